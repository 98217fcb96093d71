import type { Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { fsPath, shown } from '../format/byte-string.js';
import { sameMedium } from './file-identity.js';
import type { LocalCopy } from './verified-copy.js';

/**
 * The open file still is the verified copy. Unlinking moves the ctime too: a cache file no longer linked
 * (evicted while we read it) is unchanged if its other fields are, since nothing writes a cache file after its commit
 * and nobody can open it to write any more. Not a user's file: it may have been written to (its mtime put back) before
 * it was removed, and the ctime its unlink moved is the only trace of that (a mount served the edited bytes).
 */
function unchanged(st: Stats, copy: LocalCopy): boolean {
  const same = st.size === copy.size && st.mtimeMs === copy.mtimeMs && st.ino === copy.ino && st.dev === copy.dev;
  return same && (st.ctimeMs === copy.ctimeMs || (st.nlink === 0 && copy.userFile !== true));
}

/** Throws unless the open file still is the verified copy (a block device: the same medium, hash-index.ts), and no later hash found it bad. */
export async function assertUnchanged(fh: FileHandle, copy: LocalCopy): Promise<void> {
  const st = await fh.stat().catch(() => undefined);
  const same = st && (copy.medium === undefined ? unchanged(st, copy) : await sameMedium(st, copy));
  const what = copy.medium === undefined ? ' changed' : ': the disc in it changed (swapped, ejected or resized)';
  if (copy.stale || !same) throw new Error(`${shown(copy.path)}${what} since it was verified`);
}

/** Opens a copy's file, refusing it unless it is the file that was verified (not replaced, not edited). */
export async function openUnchanged(copy: LocalCopy): Promise<FileHandle> {
  const fh = await open(fsPath(copy.path), 'r');
  try {
    await assertUnchanged(fh, copy);
    return fh;
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}
