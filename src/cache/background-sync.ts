import { open } from 'node:fs/promises';

/**
 * Files synced at a time. With 2, make-image of the 2 GB fixture over HTTP (0 ms) ended with 1.2-1.6 s of syncs
 * still to wait for; with 4 (and 8 threads in libuv's pool: bin/jigdofs) they kept up, and the run ended 0.3 s
 * after its image (BENCHMARKS.md, "Less waiting per fetched part").
 */
const CONCURRENCY = 4;

/** Writes a file's bytes to the disk (fdatasync through a descriptor of its own: the writer's is closed by now). */
export async function syncFile(file: string): Promise<void> {
  const fh = await open(file, 'r');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/**
 * Syncs files in the background, CONCURRENCY at a time, in the order they were added: for files whose bytes
 * nobody trusts before they are hashed (PartCache.commitUnhashed), which need to be on the disk only before
 * they get a checksum name. A sync per commit, awaited by the commit, held each of make-image's 1,550 fetched
 * parts for milliseconds and kept the thread pool's few threads waiting on the disk, in front of every other
 * file operation of the fetches and of the image stream.
 *
 * Fields: `queue` (files not started yet), `running` (syncs in flight), `failed` (files whose sync failed:
 * not durable, never to be named), `idle` (callers of `flush` waiting for the queue to empty).
 */
export class BackgroundSync {
  private readonly queue: string[] = [];
  private running = 0;
  private readonly failed = new Set<string>();
  private idle: Array<() => void> = [];

  add(file: string): void {
    this.queue.push(file);
    this.pump();
  }

  /** Waits for every file added so far; returns those whose sync failed (a file gone meanwhile included). */
  async flush(): Promise<ReadonlySet<string>> {
    if (this.running > 0 || this.queue.length > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    return this.failed;
  }

  private pump(): void {
    while (this.running < CONCURRENCY && this.queue.length > 0) {
      const file = this.queue.shift()!;
      this.running++;
      void syncFile(file)
        .catch(() => void this.failed.add(file))
        .finally(() => {
          this.running--;
          this.pump();
          if (this.running === 0 && this.queue.length === 0) for (const wake of this.idle.splice(0)) wake();
        });
    }
  }
}
