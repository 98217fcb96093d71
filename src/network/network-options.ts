import type { ChecksumKind } from '../format/checksum.js';

/** The network's options, declared once: the CLI fills them from flags and the config file (cli/options.ts). */

export interface NetworkOptions {
  /** Never touch the network (the disk cache is still used). */
  offline: boolean;
  /** `--mirror LABEL=URL`: tried before the .jigdo's own [Servers] entries for LABEL, in this order. */
  mirrors: Map<string, string[]>;
  cacheDir: string;
  /** `--cache-size` in bytes; undefined: the default (capped by free disk space). */
  cacheSize?: number;
  /** Connect, headers and body-idle timeout, ms. */
  timeoutMs: number;
  /** Concurrent HTTP requests (in all). */
  connections: number;
  /** Extra rounds over all candidates after each of them failed. */
  retries: number;
  /**
   * false (make-image without --keep-parts): the parts this process downloads are removed from the cache once the
   * job's whole output matched (RemoteParts.confirmDeferred), and those it takes unhashed are never synced; so are
   * the unhashed downloads of an interrupted run that it adopted (Network.providers). Absent: kept.
   */
  keepDownloads?: boolean;
  /**
   * Log what takes a while and is no failure (a template downloading): a daemon's log (mount, serve), where it is the
   * only sign of what the daemon waits for. A command's terminal gets one line per failure and nothing else.
   */
  logProgress?: boolean;
  /** Parts larger than this are fetched as parallel ranges of about this size. */
  rangeSize: number;
  /** Parallel range requests per part. */
  streamsPerPart: number;
  log: (line: string) => void;
  /** Hashes a cache file before it is committed: the command's worker pool. */
  hashFile: (file: string, kind: ChecksumKind) => Promise<Buffer>;
  /** Drops files from the page cache (PartCache.leavePageCache): the command's worker pool. Absent: nothing is dropped. */
  dropPages?: (paths: string[]) => Promise<void>;
}

export const NETWORK_DEFAULTS = {
  timeoutMs: 30_000,
  connections: 8,
  retries: 2,
  rangeSize: 4 << 20,
  streamsPerPart: 4,
} as const;
