import type { CacheFs } from './cache-fs.js';

/**
 * Gives `file` the name `dest` in the same folder unless another file holds that name already: then false, and `file`
 * stays. link(2) fails with EEXIST where a check and a rename would both pass for two processes at once, the second
 * rename replacing the first one's file. Where links do not work (cache-lock.ts says where), the check and the rename.
 */
export async function nameIfFree(file: string, dest: string, fs: CacheFs): Promise<boolean> {
  const failed = await fs.link(file, dest).then(
    () => undefined,
    (err: NodeJS.ErrnoException) => err,
  );
  if (failed?.code === 'ENOENT') throw failed; // `file` is gone
  if (failed && failed.code !== 'EEXIST') return renameIfFree(file, dest, fs);
  // The name may hold this very file: a process that claimed `file` by its other name between another's link and
  // unlink (PartCache.adoptUnhashed), or a link retried over NFS after it got through. Named, then, and counted once.
  if (failed && !(await sameFile(file, dest, fs))) return false;
  // Should this fail, the file keeps both names until the checksum name is evicted, and counts twice in a count of the files.
  await fs.unlink(file).catch(() => undefined);
  return true;
}

async function renameIfFree(file: string, dest: string, fs: CacheFs): Promise<boolean> {
  if (await fs.stat(dest).then(() => true, () => false)) return false;
  await fs.rename(file, dest);
  return true;
}

async function sameFile(a: string, b: string, fs: CacheFs): Promise<boolean> {
  const [sa, sb] = await Promise.all([fs.stat(a), fs.stat(b)].map((p) => p.catch(() => undefined)));
  return sa !== undefined && sb !== undefined && sa.dev === sb.dev && sa.ino === sb.ino;
}
