import { statfs } from 'node:fs/promises';
import path from 'node:path';

/**
 * statfs(2) magic numbers of the file systems whose calls on a file's names and times (stat, link, rename, utimes) touch
 * no file data and wait for no server: ext2/3/4, XFS, Btrfs, tmpfs, F2FS (cache/cache-fs.ts). Not overlayfs (a utimes,
 * link or rename of a file of a lower layer copies the whole file up), not ZFS (such calls wait on the pool's write
 * throttle), and no network or FUSE file system (a round trip to a server).
 */
const FAST_METADATA_FILE_SYSTEMS = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0xf2f52010]);
const ZFS = 0x2fc12fc1;
const OVERLAYFS = 0x794c7630;

/**
 * The local disk file systems that keep a file's unwritten ranges as holes, so that growing a file with ftruncate
 * writes nothing: those above, ZFS, and overlayfs (whose new files live on its upper file system, one of these in
 * practice). FAT is not among them: Linux fills the new range with zeros there, a second write of the whole image; any
 * file system not listed is treated the same way.
 */
const LOCAL_SPARSE_FILE_SYSTEMS = new Set([...FAST_METADATA_FILE_SYSTEMS, ZFS, OVERLAYFS]);

/** The statfs(2) type of the file system holding `file`, as the unsigned number the magic constants are. */
async function fileSystemType(file: string | Buffer): Promise<number> {
  return Number((await statfs(file)).type) >>> 0;
}

/** Whether the file system holding `file` (which exists) grows files by ftruncate without writing; false if unknown. */
export async function holdsSparseFiles(file: string | Buffer): Promise<boolean> {
  try {
    return LOCAL_SPARSE_FILE_SYSTEMS.has(await fileSystemType(file));
  } catch {
    return false;
  }
}

/**
 * Whether `dir` is (or, not made yet, will be made) on one of FAST_METADATA_FILE_SYSTEMS: asked of its nearest
 * existing ancestor. False if unknown.
 */
export async function hasFastMetadata(dir: string): Promise<boolean> {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    try {
      return FAST_METADATA_FILE_SYSTEMS.has(await fileSystemType(at));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || at === path.dirname(at)) return false;
    }
  }
}
