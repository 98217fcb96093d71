import { link, rename, stat, unlink } from 'node:fs/promises';

/**
 * Gives `file` the name `dest` in the same folder unless a file holds that name already: then false, and `file` stays.
 * link(2) fails with EEXIST where a check and a rename would both pass for two processes at once, the second rename
 * replacing the first one's file. Where links do not work (cache-lock.ts says where), the check and the rename.
 */
export async function nameIfFree(file: string, dest: string): Promise<boolean> {
  try {
    await link(file, dest);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code === 'ENOENT') throw err; // `file` is gone
    if (await stat(dest).then(() => true, () => false)) return false;
    await rename(file, dest);
    return true;
  }
  // A failure leaves the file under both names, counted once: a later look adopts the extra name and drops it.
  await unlink(file).catch(() => undefined);
  return true;
}
