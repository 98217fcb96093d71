import { settledWithin } from '../util/settle.js';
import type { CacheWriter } from './cache-writer.js';

/** How long the end of the cache's use waits for downloads cut by the network's close to clean up after themselves. */
export const WRITERS_END_MS = 5_000;

/**
 * This process's cache writers not yet done (committed or aborted), so that the end of the cache's use can wait for
 * them. The network's close cuts the downloads, and each then removes its temporary file and releases its lock, a
 * few file-system calls later; a daemon exits right after its sessions closed, so a cleanup still under way then was
 * never done (the soak test found a `.partial` file and a lock left by a mount it had unmounted). The next process
 * would have removed them, but a lock of a live process's pid is not taken over at once.
 *
 * Once `end` ran, no new writer is let out: it is aborted at once (no file, no lock left) and its begin fails.
 */
export class OpenWriters {
  private readonly open = new Set<CacheWriter>();
  private ended = false;

  /** Counts `writer` as open until it is done; refused (the writer aborted, then a throw) once `end` ran. */
  async add(writer: CacheWriter): Promise<void> {
    if (this.ended) {
      await writer.abort();
      throw new Error('the cache is closing: no new downloads');
    }
    this.open.add(writer);
    void writer.finished.then(() => this.open.delete(writer));
  }

  /** Refuses new writers; waits up to `ms` for the open ones to end, then aborts those still open. */
  async end(ms = WRITERS_END_MS): Promise<void> {
    this.ended = true;
    await settledWithin(Promise.all([...this.open].map((w) => w.finished)), ms);
    await Promise.all([...this.open].map((w) => w.abort()));
  }

  get isEnded(): boolean {
    return this.ended;
  }
}
