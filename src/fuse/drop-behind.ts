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

/**
 * Drops the kernel's cached pages of one mounted image behind each long sequential stream (default mounts, whose
 * pages the kernel keeps: `kernelCache`). A `cp` of the image would otherwise leave a second copy of it in the page
 * cache, besides the copy's own, and every page of it is a fresh page; with pages dropped behind the reader, the
 * kernel reuses the pages it just freed. Alternated over HTTP at 0 ms (BENCHMARKS.md, "The mount's pages behind a
 * cp"): 8.4 8.9 7.9 8.8 s without against 7.2 7.1 8.1 7.9 s with a follower doing this from outside.
 *
 * A drop opens the image through the mount (`file`), so it runs on a worker thread (WorkerPool.dropPages) while the
 * main thread answers FUSE's open. Owns the streams' drop marks and the one drop in flight, which an unmount waits
 * for (`stop`, `idle`): a `umount` must not find the image open.
 */
export class DropBehind {
  /** Stream start → where its last drop ended (oldest first, at most STREAMS). */
  private readonly dropped = new Map<number, number>();
  private inFlight: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly file: string,
    private readonly drop: (file: string, range: FileRange) => Promise<void>,
  ) {}

  /** ImageReader.watchStreams: the stream that began at `start` has been read up to `end`. */
  readonly onStream = (start: number, end: number): void => {
    if (this.stopped || this.inFlight || end - start < DROP_MIN_STREAM) return;
    const last = this.dropped.get(start) ?? start;
    const to = end - DROP_KEEP_BEHIND;
    if (to - last < DROP_STEP) return;
    this.dropped.delete(start);
    this.dropped.set(start, to);
    if (this.dropped.size > STREAMS) this.dropped.delete(this.dropped.keys().next().value!);
    const from = Math.max(start, last - OVERLAP);
    this.inFlight = this.drop(this.file, { offset: from, length: to - from })
      .catch(() => undefined)
      .finally(() => (this.inFlight = undefined));
  };

  /** Resolves once no drop is in flight. */
  async idle(): Promise<void> {
    await this.inFlight;
  }

  /** Makes no more drops; resolves once the one in flight is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.inFlight;
  }
}
