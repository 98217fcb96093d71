import { unlinkSync, type PathLike } from 'node:fs';

/**
 * Files this process made that must not outlive it: in the cache, its lock inode (cache-lock.ts), the locks it holds,
 * its downloads' temporary files (CacheWriter) and the spill file being inflated (template-data.ts); beside the
 * user's files, make-image's temporary image and make-template's temporary outputs; the hash index's file being
 * saved. Each owner removes its own, or renames it into place, and takes it off this list; what is still listed when
 * the process exits (process.exit after an unmount, a fatal error) or is ended by a signal (signals.ts: a death by
 * signal runs no 'exit' handler) is removed then, synchronously. Only kill -9 and a crash leave them: the next
 * process that opens the cache removes its part (CacheLocks.cleanOnce), the next make-image of the same output its
 * temporary image.
 */
const listed = new Map<PathLike, (() => boolean) | undefined>();
let hooked = false;

/**
 * Lists `file` for removal at exit; the returned function takes it off (its owner removed it, or renamed it into place).
 * `stillOurs`: asked at the exit, the file is removed only if it says so (a lock another process may have taken over).
 */
export function removeAtExit(file: PathLike, stillOurs?: () => boolean): () => void {
  hookExit();
  listed.set(file, stillOurs);
  return () => listed.delete(file);
}

/**
 * Makes a file under a name of this process's own with `make` (an open), listed for removal at exit before it exists:
 * the file is there as soon as open(2) returns, a moment before the code after the open runs, and an exit in that
 * moment left it (seen in CI). Returns what `make` gave, and the function that takes the file off the list.
 */
export async function makeListed<T>(file: PathLike, make: () => Promise<T>): Promise<[T, () => void]> {
  const unlist = removeAtExit(file);
  try {
    return [await make(), unlist];
  } catch (err) {
    unlist();
    throw err;
  }
}

/** Synchronous last words of files that stay (a resumable download cutting its file to the bytes it knows are written). */
const lastActions = new Set<() => void>();

/** Runs `action` (synchronous; its failure is ignored) when the process exits or is ended by a signal; returns the undo. */
export function atExit(action: () => void): () => void {
  hookExit();
  lastActions.add(action);
  return () => lastActions.delete(action);
}

/** Synchronous actions for once the listed files are removed (a mark that others must find with our locks gone). */
const endActions = new Set<() => void>();

/** Runs `action` (synchronous; its failure is ignored) at the exit, after the listed files are removed; also when added then. */
export function atExitEnd(action: () => void): void {
  hookExit();
  endActions.add(action);
}

/** Has removeLeftoversNow run at the process's exit (once, whoever asks first). */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', removeLeftoversNow);
}

/** Runs the atExit actions, then removes every listed file now, then runs the atExitEnd ones (the process is about to end). Never throws. */
export function removeLeftoversNow(): void {
  for (const action of lastActions) safely(() => (action(), true));
  lastActions.clear();
  for (const [file, stillOurs] of listed) if (!stillOurs || safely(stillOurs)) removeQuietly(file);
  listed.clear();
  for (const action of endActions) safely(() => (action(), true));
  endActions.clear();
}

/** What `ask` says; false if it throws (the exit goes on). */
function safely(ask: () => boolean): boolean {
  try {
    return ask();
  } catch {
    return false;
  }
}

export function removeQuietly(file: PathLike): void {
  try {
    unlinkSync(file);
  } catch {
    // never made, or removed already
  }
}
