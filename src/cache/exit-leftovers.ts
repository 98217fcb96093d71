import { unlinkSync } from 'node:fs';

/**
 * Files this process made in a cache that must not outlive it: its lock inode (cache-lock.ts), the locks it holds and
 * its downloads' temporary files (CacheWriter). Each owner removes its own and takes it off this list; what is still
 * listed when the process exits (process.exit after an unmount, a fatal error), or when make-image is interrupted by
 * a signal (removeLeftoversNow: a death by signal runs no 'exit' handler), is removed then, synchronously. Only
 * kill -9 and a crash leave them: the next process that opens the cache removes those (CacheLocks.cleanOnce).
 */
const listed = new Set<string>();
let hooked = false;

/** Lists `file` for removal at exit; the returned function takes it off (its owner removed it, or it became a part). */
export function removeAtExit(file: string): () => void {
  if (!hooked) {
    hooked = true;
    process.once('exit', removeLeftoversNow);
  }
  listed.add(file);
  return () => listed.delete(file);
}

/** Removes every listed file now (the process is about to end). Never throws. */
export function removeLeftoversNow(): void {
  for (const file of listed) removeQuietly(file);
  listed.clear();
}

export function removeQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // never made, or removed already
  }
}
