import { open, type FileHandle } from 'node:fs/promises';

/**
 * Files synced at a time. Each fdatasync of a new file commits the file system's journal (ext4: a commit and a cache
 * flush of the disk), and syncs that run at once share a commit. With 2, make-image of the 2 GB fixture over HTTP
 * (0 ms) ended with 1.2-1.6 s of syncs still to wait for; with 4 they kept up, but as many small commits, which the
 * image's writes waited behind on the disk; with 16 (and 24 threads in libuv's pool: bin/jigdofs) the run's median
 * was 0.2-1.0 s lower in alternated loops (the host's noise was of that size too), with 32 not lower than with 16
 * (BENCHMARKS.md, "Syncs that share the journal's commits").
 */
const CONCURRENCY = 16;
/** Writers' descriptors kept open for their sync at most (one beyond is closed at once and synced by its name). */
const HELD_HANDLES = 64;

/** Writes a file's bytes to the disk, through a descriptor of its own. */
export async function syncFile(file: string): Promise<void> {
  await syncHandle(await open(file, 'r'));
}

/** fdatasync, then close (also when the sync failed). */
async function syncHandle(fh: FileHandle): Promise<void> {
  try {
    await fh.datasync();
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * Syncs files in the background, CONCURRENCY at a time, in the order they were added: for files whose bytes
 * nobody trusts before they are hashed (PartCache.commitUnhashed), which need to be on the disk only before
 * they get a checksum name. A sync per commit, awaited by the commit, held each of make-image's 1,550 fetched
 * parts for milliseconds and kept the thread pool's few threads waiting on the disk, in front of every other
 * file operation of the fetches and of the image stream.
 *
 * Fields: `queue` (files not started yet, each with its sync: through the writer's descriptor while fewer than
 * HELD_HANDLES are held, which spares an open and a close), `held` (how many of those), `running` (syncs in flight),
 * `failed` (files whose sync failed: not durable, never to be named; each handed to `onFailure`, awaited as part
 * of its sync), `idle` (callers of `flush` waiting for the queue to empty).
 */
export class BackgroundSync {
  /**
   * `onFailure`: what to do with a file whose sync (or the close of its writer's descriptor) failed. Its bytes may
   * not be on the disk, and a later sync through a new descriptor may still succeed (the kernel reports a failed
   * writeback once), so nobody may give it a name later: the cache removes it.
   */
  constructor(private readonly onFailure: (file: string) => Promise<void> = async () => undefined) {}

  private readonly queue: Array<{ file: string; sync: () => Promise<void> }> = [];
  private held = 0;
  private running = 0;
  private readonly failed = new Set<string>();
  private idle: Array<() => void> = [];
  /** Files added and not synced yet: their syncs to come, and what `whenSynced` callers wait on. */
  private readonly pending = new Map<string, { count: number; done: Promise<void>; resolve: () => void }>();

  /** Syncs `file`; `fh`, a descriptor of it, becomes this object's to close. */
  add(file: string, fh?: FileHandle): void {
    let sync = (): Promise<void> => syncFile(file);
    if (fh && this.held < HELD_HANDLES) {
      this.held++;
      sync = () => syncHandle(fh).finally(() => this.held--);
    } else if (fh) {
      // A close can report a failed write (NFS): then the file counts as not synced, whatever a later sync says.
      const closing = fh.close();
      closing.catch(() => undefined); // (seen when its turn comes)
      sync = () => closing.then(() => syncFile(file));
    }
    this.queue.push({ file, sync });
    const known = this.pending.get(file);
    if (known) known.count++;
    else {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      this.pending.set(file, { count: 1, done, resolve });
    }
    this.pump();
  }

  /** Resolves once `file`'s sync is over (failed or not), at once if it has none to wait for. */
  whenSynced(file: string): Promise<void> {
    return this.pending.get(file)?.done ?? Promise.resolve();
  }

  /** Waits for every file added so far; returns those whose sync failed (a file gone meanwhile included). */
  async flush(): Promise<ReadonlySet<string>> {
    if (this.running > 0 || this.queue.length > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    return this.failed;
  }

  private pump(): void {
    while (this.running < CONCURRENCY && this.queue.length > 0) {
      const { file, sync } = this.queue.shift()!;
      this.running++;
      void sync()
        .catch(async () => {
          this.failed.add(file);
          await this.onFailure(file).catch(() => undefined);
        })
        .finally(() => {
          const waiting = this.pending.get(file);
          if (waiting && --waiting.count === 0) {
            waiting.resolve();
            this.pending.delete(file);
          }
          this.running--;
          this.pump();
          if (this.running === 0 && this.queue.length === 0) for (const wake of this.idle.splice(0)) wake();
        });
    }
  }
}
