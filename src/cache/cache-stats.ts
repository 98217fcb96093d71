/** What `jigdofs status` and the benchmarks show of a process's disk cache (PartCache.stats). */
export interface CacheStats {
  dir: string;
  /** Bytes and files in the cache as last counted (this process's additions included). */
  bytes: number;
  files: number;
  /** The limit in force (after the free-space cap), bytes; 0 until first computed. */
  limit: number;
  hits: number;
  misses: number;
  added: number;
  evictions: number;
  evictedBytes: number;
  /** Files with the wrong size found under a checksum name (removed), and unhashed parts that proved wrong. */
  removedBad: number;
  /** Unhashed parts (see commitUnhashed) hashed by this process and given their checksum name. */
  adopted: number;
}
