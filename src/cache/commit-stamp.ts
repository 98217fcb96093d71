/**
 * A committed cache file's mtime: a whole second, set just before the file gets its checksum name (PartCache.place,
 * replaceWithOwnCopy) and written back exactly whenever its access time is refreshed. Any write into the file since
 * (a disk tool, an editor, `dd conv=notrunc`) sets an mtime with a fraction of a second, where the file system keeps
 * them: such a file is no longer what was verified, and a mount would have served its bytes as the part's.
 */
export function commitStamp(now = Date.now()): number {
  return Math.floor(now / 1000);
}

/** The file's mtime (ms) is no commit stamp: written since it was verified. */
export function writtenSinceCommit(mtimeMs: number): boolean {
  return mtimeMs % 1000 !== 0;
}
