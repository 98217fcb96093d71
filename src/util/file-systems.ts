import { statfs } from 'node:fs/promises';
import path from 'node:path';

/**
 * statfs(2) magic numbers of local disk file systems that keep a file's unwritten ranges as holes, so that growing a
 * file with ftruncate writes nothing: ext2/3/4, XFS, Btrfs, tmpfs, F2FS, ZFS, and overlayfs (whose new files live on
 * its upper file system, one of these in practice). FAT is not among them: Linux fills the new range with zeros
 * there, a second write of the whole image; any file system not listed is treated the same way. Network and FUSE
 * file systems are not either: their metadata calls can take a round trip to a server (cache/cache-fs.ts).
 */
const LOCAL_SPARSE_FILE_SYSTEMS = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0xf2f52010, 0x2fc12fc1, 0x794c7630]);

/** Whether a statfs(2) type is one of LOCAL_SPARSE_FILE_SYSTEMS. */
export function isLocalSparseType(type: number | bigint): boolean {
  return LOCAL_SPARSE_FILE_SYSTEMS.has(Number(type) >>> 0);
}

/** Whether the file system holding `file` (which exists) grows files by ftruncate without writing; false if unknown. */
export async function holdsSparseFiles(file: string | Buffer): Promise<boolean> {
  try {
    return isLocalSparseType((await statfs(file)).type);
  } catch {
    return false;
  }
}

/**
 * Whether `dir` is (or, not made yet, will be made) on a local disk file system of that list: asked of its nearest
 * existing ancestor. False if unknown.
 */
export async function onLocalDisk(dir: string): Promise<boolean> {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    try {
      return isLocalSparseType((await statfs(at)).type);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || at === path.dirname(at)) return false;
    }
  }
}
