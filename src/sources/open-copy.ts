import type { Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { fsPath, shown } from '../format/byte-string.js';
import { sameMedium } from './file-identity.js';
import type { LocalCopy } from './verified-copy.js';

/**
 * The open file still is the verified copy: the same inode, size and mtime, and for a user's file the same ctime. A
 * user's file may be edited and its mtime put back (`touch -r`), even just before it is removed: the ctime is the only
 * trace of that (a mount served the edited bytes). Not a cache file's ctime: the cache moves it without touching a
 * byte (any process's access-time refresh, PartCache.lookupFile; the link and unlink that name an adopted download,
 * adoptUnhashed; an eviction's unlink), and any write into one shows in its mtime, a whole-second commit stamp
 * (commit-stamp.ts) that only a deliberate utimes puts back. Compared, a make-image sharing its cache with another
 * failed on a part the other had just named or touched: "changed since it was verified".
 */
function unchanged(st: Stats, copy: LocalCopy): boolean {
  const same = st.size === copy.size && st.mtimeMs === copy.mtimeMs && st.ino === copy.ino && st.dev === copy.dev;
  return same && (copy.userFile !== true || st.ctimeMs === copy.ctimeMs);
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
