/** How much of the disk the cache may take: the free-space cap that --cache-size is held under (cache-eviction.ts). */

/**
 * The free-space cap (freeSpaceCap) leaves the disk this much beside the cache: 5 % of it, at least 1 GiB, for
 * whoever else uses it.
 */
const RESERVE_SHARE = 0.05;
const RESERVE_MIN = 1024 ** 3;
/**
 * What the free-space cap leaves the cache at least, while the disk has it: the parts a reader has located ahead and
 * not yet read (a mount locates up to 96 MiB past a stream, and its read-ahead blocks come on top). At a cap of 0, on a
 * disk less than 5 % free, every commit evicted every part before it, those located ahead too: each was fetched again
 * when its read came, and a read whose part went twice failed.
 */
export const WORKING_SET = 512 << 20;
/**
 * …but never leaving the disk less free than this, or than RESERVE_SHARE of it on a smaller disk: a file system of a
 * few GB or less made for the cache (a 20 MB tmpfs) had a cap of 0, and every commit evicted every other part.
 */
export const MIN_FREE = 256 << 20;

/**
 * The most the cache may hold on a disk of `diskBytes` with `freeBytes` free beside the cache's `cacheBytes`: what
 * leaves the disk its reserve, or (when that is less) WORKING_SET as far as the disk has it beyond MIN_FREE (or
 * RESERVE_SHARE of a small disk). Downloads in flight are not counted here: they reserve their room (disk-room.ts).
 */
export function freeSpaceCap(cacheBytes: number, freeBytes: number, diskBytes: number): number {
  const polite = cacheBytes + freeBytes - Math.max(RESERVE_MIN, RESERVE_SHARE * diskBytes);
  const needed = Math.min(WORKING_SET, cacheBytes + freeBytes - Math.min(MIN_FREE, RESERVE_SHARE * diskBytes));
  return Math.max(0, polite, needed);
}
