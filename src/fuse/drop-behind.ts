import { settledWithin } from '../util/settle.js';
import type { FileRange } from '../util/worker-protocol.js';

/**
 * A stream must have read this much before the pages behind it are dropped: a short one (a loop-mounted file
 * system's table, a small file inside the image) keeps them for the re-reads it may make.
 */
export const DROP_MIN_STREAM = 64 << 20;
/**
 * Kept behind a stream's end: the kernel's read-ahead runs ahead of the reader (the stream's end is where FUSE's
 * reads got to, not where the reader is), and FUSE's threads hand reads over out of order.
 */
export const DROP_KEEP_BEHIND = 32 << 20;
/** Dropped this much at a time at least (one open of the image through the mount each). */
export const DROP_STEP = 8 << 20;
/**
 * Each drop starts this far before the last one ended: the page cache holds a file in folios (up to 2 MiB here), and
 * fadvise drops only those wholly inside the range, so the folio across the last drop's end goes with the next.
 */
const OVERLAP = 4 << 20;
/** Streams remembered (by where they began). */
const STREAMS = 16;
/** An unmount waits at most this long for the drop in flight (its open of the image through the mount). */
export const DROP_WAIT_MS = 1000;

/** A stream's progress: how far it was read, and up to where its pages were dropped. */
interface Mark {
  end: number;
  dropped: number;
}

/**
 * Drops the kernel's cached pages of one mounted image behind each long sequential stream (default mounts, whose
 * pages the kernel keeps: `kernelCache`). A `cp` of the image would otherwise leave a second copy of it in the page
 * cache, besides the copy's own, and every page of it is a fresh page; with pages dropped behind the reader, the
 * kernel reuses the pages it just freed. Alternated over HTTP at 0 ms (BENCHMARKS.md, "The mount's pages behind a
 * cp"): 9.5 8.6 8.1 8.9 s before, 7.8 7.3 7.6 7.9 s after.
 *
 * A drop opens the image through the mount (`file`), so it runs on a worker thread of its own (daemon.ts gives it a
 * one-thread pool that nothing else uses: a read must never wait behind a drop that waits for a FUSE thread) while
 * the main thread answers FUSE's open. Owns the streams' marks, the one drop in flight and the latest progress seen
 * meanwhile (made up for once it ends), and the pause an unmount asks for: `umount` must not find the image open.
 */
export class DropBehind {
  /** By stream start, oldest first, at most STREAMS. */
  private readonly marks = new Map<number, Mark>();
  private inFlight: Promise<void> | undefined;
  /** The latest progress that came while a drop was in flight. */
  private missed: { start: number; end: number } | undefined;
  private paused = false;
  private stopped = false;

  constructor(
    private readonly file: string,
    private readonly drop: (file: string, range: FileRange) => Promise<void>,
  ) {}

  /** ImageReader.watchStreams: the stream that began at `start` has been read up to `end`. */
  readonly onStream = (start: number, end: number): void => {
    if (this.stopped || end - start < DROP_MIN_STREAM) return;
    if (this.inFlight || this.paused) {
      this.missed = { start, end };
      return;
    }
    let mark = this.marks.get(start);
    // Far short of where a stream from the same place got to: a new one (a second `cp`), whose marks start over. (Not
    // just short: FUSE's threads hand a stream's reads over out of order, a few reads apart.)
    if (!mark || end < mark.end - DROP_KEEP_BEHIND) mark = { end, dropped: start };
    mark.end = end;
    this.marks.delete(start);
    this.marks.set(start, mark);
    if (this.marks.size > STREAMS) this.marks.delete(this.marks.keys().next().value!);
    const to = end - DROP_KEEP_BEHIND;
    if (to - mark.dropped < DROP_STEP) return;
    const from = Math.max(start, mark.dropped - OVERLAP); // (a first drop: from the start)
    mark.dropped = to;
    this.inFlight = this.drop(this.file, { offset: from, length: to - from })
      .catch(() => undefined)
      .finally(() => {
        this.inFlight = undefined;
        this.catchUp();
      });
  };

  /** Once a drop ended (or a pause did): the progress that came meanwhile. */
  private catchUp(): void {
    const missed = this.missed;
    this.missed = undefined;
    if (missed) this.onStream(missed.start, missed.end);
  }

  /**
   * Makes no drop until `resume` and waits (at most DROP_WAIT_MS) for the one in flight: a non-lazy unmount, which a
   * drop's open of the image would make fail as busy.
   */
  async pause(): Promise<void> {
    this.paused = true;
    await this.settled();
  }

  resume(): void {
    this.paused = false;
    this.catchUp();
  }

  /** Makes no more drops; resolves once the one in flight is done, or after DROP_WAIT_MS. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.settled();
  }

  private async settled(): Promise<void> {
    if (this.inFlight) await settledWithin(this.inFlight, DROP_WAIT_MS);
  }
}
