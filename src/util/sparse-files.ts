import { statfs } from 'node:fs/promises';

/**
 * statfs(2) magic numbers of the file systems that keep a file's unwritten ranges as holes, so that growing a file
 * with ftruncate writes nothing: ext2/3/4, XFS, Btrfs, tmpfs, F2FS, ZFS, and overlayfs (whose new files live on
 * its upper file system, one of these in practice). FAT is not among them: Linux fills the new range with zeros
 * there, a second write of the whole image; any file system not listed is treated the same way.
 */
const SPARSE_FILE_SYSTEMS = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0xf2f52010, 0x2fc12fc1, 0x794c7630]);

/** Whether the file system holding `file` (which exists) grows files by ftruncate without writing; false if unknown. */
export async function holdsSparseFiles(file: string | Buffer): Promise<boolean> {
  try {
    return SPARSE_FILE_SYSTEMS.has(Number((await statfs(file)).type) >>> 0);
  } catch {
    return false;
  }
}
