import { copyFile, unlink } from 'node:fs/promises';
import type { TempFile } from './cache-writer.js';
import type { CacheFs } from './cache-fs.js';
import { commitStamp } from './commit-stamp.js';

/**
 * Replaces `file` (an unhashed part another writer left, just claimed: PartCache.adoptUnhashed) by a copy written by
 * this process, through a temporary file of the cache renamed over it. The writer's background sync may have failed
 * already: Linux reports a failed write-back once, to the descriptors open when it is reported, so a sync through one
 * opened later says nothing while the pages, marked clean, never reached the disk; and the writer removes the file by
 * a name it no longer has. The copy's own sync (before it is named) reports any failure of its writes. (A file system
 * that clones blocks instead gives the copy what the disk holds, and the hash reads that.)
 */
export async function replaceWithOwnCopy(
  file: string,
  tempFile: () => Promise<TempFile>,
  fs: Pick<CacheFs, 'rename' | 'utimes'>,
): Promise<void> {
  const { file: tmp, fh, unlist } = await tempFile();
  try {
    await fh.close();
    await copyFile(file, tmp);
    await fs.utimes(tmp, Date.now() / 1000, commitStamp()); // it is named as it is once it hashes right
    await fs.rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  } finally {
    unlist();
  }
}
