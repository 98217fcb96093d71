import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, stat, statfs, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { hexOfKey, type ChecksumKind } from '../format/checksum.js';
import { identityOf } from '../sources/hash-index.js';
import { errorMessage } from '../format/errors.js';
import type { LocalCopy } from '../sources/local-sources.js';
import { workerPool } from '../util/worker-pool.js';
import { makeDirs } from '../util/make-dirs.js';
import { pidAlive } from '../util/pid.js';

/**
 * The disk cache of fetched parts and templates, shared by every process of the user.
 *
 * Content-addressed: a file's name is its checksum (`parts/md5/ab/ab12…`), and a file gets that name only
 * by a rename done after its bytes were hashed and matched. So whatever sits under a checksum name was
 * verified when written; a killed process leaves at most a `tmp/*.partial` file (never taken as a part,
 * removed by the next process) and a lock file (taken over once its owner is dead or silent).
 *
 * One fetch per part across processes: the writer holds `locks/<hex>.lock` (created with O_EXCL,
 * refreshed every few seconds); others wait for the file to appear or the lock to go away.
 *
 * Size: every commit first makes room for itself, evicting least-recently-used files (access time, set
 * explicitly on use) down to 90% of the limit, so the cache never holds more than the limit, and a part
 * larger than the limit alone is the only excess. Commits of one process run one at a time for that. The
 * limit is `--cache-size` (default 20 GiB) but never more than the cache's own files plus the free disk
 * space minus a reserve. Files handed out are not spared: a reader that has the file open keeps its bytes
 * (an unlinked file lives until closed, and a verified file is never written again), and one that had not
 * opened it yet finds it gone and locates the part again (re-fetch). Sparing them is what let a mount hold
 * 5× its limit.
 *
 * Privacy: folders are made 0700 (makeDirs) and files 0600, so that a second local user can read neither
 * what we fetched nor which parts we needed, even under a cache folder the user made with looser rights.
 */

export const DEFAULT_CACHE_BYTES = 20 * 1024 ** 3;
const HEARTBEAT_MS = 5_000;
/** A lock not refreshed for this long belongs to a dead or stuck process. */
const LOCK_STALE_MS = 30_000;
/** Temporary files older than this are removed even when their owner cannot be checked. */
const TMP_STALE_MS = 24 * 3600_000;
/** A rescan of the cache (other processes add files too) happens at most this often. */
const RESCAN_MS = 60_000;
/** Access times are refreshed at most this often per file. */
const TOUCH_MS = 60_000;
const LOW_WATER = 0.9;
/** Cached files, temporary files and locks: private (see above). */
const FILE_MODE = 0o600;

export type CacheSpace = 'parts' | 'templates';
export type SumCheck = [ChecksumKind, Buffer];

export interface PartCacheOptions {
  /** The cache directory (`--cache-dir`); parts live in `DIR/parts`, templates in `DIR/templates`. */
  dir: string;
  /** `--cache-size` in bytes; undefined: the default. */
  maxBytes?: number;
  log?: (line: string) => void;
  /** Hashes a whole file (defaults to the worker pool). */
  hashFile?: (file: string, kind: ChecksumKind) => Promise<Buffer>;
}

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
  /** Files with the wrong size found under a checksum name (removed). */
  removedBad: number;
}

const HOST_TAG = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);

/** `HOSTTAG-PID-…`: owned by a process of this host that no longer runs. */
function ownerDead(name: string): boolean {
  const m = /^([0-9a-f]{8})-(\d+)-/.exec(name);
  return m !== null && m[1] === HOST_TAG && !pidAlive(Number(m[2]));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class PartCache {
  readonly dir: string;
  private readonly maxBytes: number;
  private readonly log: (line: string) => void;
  private readonly hashFile: (file: string, kind: ChecksumKind) => Promise<Buffer>;
  private counted: { bytes: number; files: number; at: number } | undefined;
  private scanning: Promise<void> | undefined;
  /** The tail of the queue commits and trims wait in: each makes room, then renames, before the next. */
  private sizeQueue: Promise<unknown> = Promise.resolve();
  private cleaned: Promise<void> | undefined;
  private readonly heldLocks = new Set<string>();
  /** Directories made by this process (one mkdir each, not one per part). */
  private readonly madeDirs = new Set<string>();
  /** The last size limit computed from the free disk space, reused for a while (a statfs per part was measurable). */
  private lastLimit: { at: number; cacheBytes: number; limit: number } | undefined;
  private readonly stats_: CacheStats;

  constructor(opts: PartCacheOptions) {
    this.dir = path.resolve(opts.dir);
    this.maxBytes = opts.maxBytes ?? DEFAULT_CACHE_BYTES;
    this.log = opts.log ?? (() => undefined);
    this.hashFile = opts.hashFile ?? ((file, kind) => workerPool().hashFile(file, kind));
    this.stats_ = { dir: this.dir, bytes: 0, files: 0, limit: 0, hits: 0, misses: 0, added: 0, evictions: 0, evictedBytes: 0, removedBad: 0 };
  }

  private get tmpDir(): string {
    return path.join(this.dir, 'parts', 'tmp');
  }

  private get lockDir(): string {
    return path.join(this.dir, 'parts', 'locks');
  }

  /** Where the verified file of a checksum lives. */
  pathFor(space: CacheSpace, kind: ChecksumKind, hex: string): string {
    return space === 'parts' ? path.join(this.dir, 'parts', kind, hex.slice(0, 2), hex) : path.join(this.dir, 'templates', kind, `${hex}.template`);
  }

  partPath(kind: ChecksumKind, key: string): string {
    return this.pathFor('parts', kind, hexOfKey(key));
  }

  /** The cached, verified copy of a part (`length` bytes), or undefined. */
  async lookupPart(kind: ChecksumKind, key: string, length: number): Promise<LocalCopy | undefined> {
    const copy = await this.lookup(this.partPath(kind, key), length);
    if (copy) this.stats_.hits++;
    else this.stats_.misses++;
    return copy;
  }

  /** A verified file by path, with its access time refreshed; a file of the wrong size is removed. */
  async lookup(file: string, length?: number): Promise<LocalCopy | undefined> {
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    if (length !== undefined && st.size !== length) {
      // Cannot happen through this code (the name is given after verification): someone changed it.
      this.stats_.removedBad++;
      this.log(`cache: ${file} has ${st.size} bytes, expected ${length}: removed`);
      await unlink(file).catch(() => undefined);
      return undefined;
    }
    if (Date.now() - st.atimeMs <= TOUCH_MS) return { path: file, offset: 0, ...identityOf(st) };
    // Only atime changes: mtime is set to whole seconds at commit, so it is written back exactly. The
    // ctime moves, so the identity handed out is the one after the touch.
    await utimes(file, Date.now() / 1000, st.mtimeMs / 1000).catch(() => undefined);
    const now = await stat(file).catch(() => undefined);
    return now?.isFile() ? { path: file, offset: 0, ...identityOf(now) } : undefined;
  }

  /**
   * Gets the right to write a checksum's file, or the file itself if it exists or another process
   * finishes it while we wait for its lock. `onWait` is called once if we had to wait for another process.
   */
  async begin(space: CacheSpace, kind: ChecksumKind, hex: string, onWait?: () => void): Promise<{ copy: LocalCopy } | { writer: CacheWriter }> {
    const final = this.pathFor(space, kind, hex);
    await this.cleanOnce();
    let delay = 20;
    let waited = false;
    for (;;) {
      const copy = await this.lookup(final);
      if (copy) return { copy };
      const lock = await this.tryLock(`${space}-${kind}-${hex}`);
      if (lock) {
        try {
          const again = await this.lookup(final);
          if (again) {
            await lock.release();
            return { copy: again };
          }
          const { file: tmp, fh } = await this.tempFile();
          return { writer: new CacheWriter(this, space, final, tmp, fh, lock) };
        } catch (err) {
          // No writer owns the lock (e.g. the temporary file could not be created): release it, or its
          // heartbeat would keep it fresh forever and every later fetch of this checksum would wait on it.
          await lock.release();
          throw err;
        }
      }
      if (!waited) {
        waited = true;
        onWait?.();
      }
      await sleep(delay);
      delay = Math.min(250, delay * 2);
    }
  }

  /**
   * A new temporary file in the cache (same file system as its final place). Named after this process, so
   * that what a killed process leaves is removed by the next one.
   */
  async tempFile(): Promise<{ file: string; fh: FileHandle }> {
    const file = path.join(this.tmpDir, `${HOST_TAG}-${process.pid}-${randomBytes(6).toString('hex')}.partial`);
    return { file, fh: await this.inDir(this.tmpDir, () => open(file, 'w+', FILE_MODE)) };
  }

  /** Hashes `tmp` and, if one of `sums` matches, renames it to `final`. */
  async verifyAndCommit(tmp: string, final: string, fh: FileHandle, sums: SumCheck[]): Promise<LocalCopy | undefined> {
    await fh.datasync();
    let ok = sums.length === 0;
    for (const [kind, sum] of sums) {
      if ((await this.hashFile(tmp, kind)).equals(sum)) {
        ok = true;
        break;
      }
    }
    if (!ok) return undefined;
    const { size } = await fh.stat();
    return this.queued(async () => {
      await this.makeRoom(size);
      // Whole-second mtime: see lookup(). The exact atime orders this file after every older one.
      await fh.utimes(Date.now() / 1000, Math.floor(Date.now() / 1000));
      await this.inDir(path.dirname(final), () => rename(tmp, final));
      this.stats_.added++;
      this.countAdded(size);
      // The identity after the rename (which moves the ctime): readers compare with it.
      return { path: final, offset: 0, ...identityOf(await fh.stat()) };
    });
  }

  // --- locks ---------------------------------------------------------------------------------------------------

  private async tryLock(name: string): Promise<Lock | undefined> {
    const file = path.join(this.lockDir, `${name}.lock`);
    if (this.heldLocks.has(file)) return undefined; // another fetch in this process (PartStore dedupes; templates may not)
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await this.inDir(this.lockDir, () => open(file, 'wx', FILE_MODE));
        try {
          await fh.writeFile(`${HOST_TAG}-${process.pid}-${Date.now()}\n`);
        } finally {
          await fh.close();
        }
        this.heldLocks.add(file);
        return new Lock(file, () => this.heldLocks.delete(file));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      if (!(await this.lockIsStale(file))) return undefined;
      // Dead owner: take it over. Two processes doing this at once may both fetch the part; both results
      // are verified and renamed atomically, so that only costs bandwidth.
      await unlink(file).catch(() => undefined);
    }
    return undefined;
  }

  /** Runs `op`, which creates something in `dir`, making `dir` first (again, if it was removed meanwhile). */
  private async inDir<T>(dir: string, op: () => Promise<T>): Promise<T> {
    if (!this.madeDirs.has(dir)) {
      await makeDirs(dir);
      this.madeDirs.add(dir);
    }
    try {
      return await op();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await makeDirs(dir);
      return op();
    }
  }

  private async lockIsStale(file: string): Promise<boolean> {
    const st = await stat(file).catch(() => undefined);
    if (!st) return true;
    if (Date.now() - st.mtimeMs > LOCK_STALE_MS) return true;
    const owner = await readFile(file, 'utf8').catch(() => '');
    return owner !== '' && ownerDead(owner.trim() + '-');
  }

  /** Removes what killed processes left: their temporary files and locks. Once per process. */
  private cleanOnce(): Promise<void> {
    return (this.cleaned ??= (async () => {
      for (const dir of [this.tmpDir, this.lockDir]) {
        const names = await readdir(dir).catch(() => [] as string[]);
        for (const name of names) {
          const file = path.join(dir, name);
          if (dir === this.lockDir) {
            if (await this.lockIsStale(file)) await unlink(file).catch(() => undefined);
            continue;
          }
          const st = await stat(file).catch(() => undefined);
          if (st && (ownerDead(name) || Date.now() - st.mtimeMs > TMP_STALE_MS)) await unlink(file).catch(() => undefined);
        }
      }
    })().catch((err) => this.log(`cache: cleanup of ${this.dir} failed: ${errorMessage(err)}`)));
  }

  // --- size limit ----------------------------------------------------------------------------------------------

  /** Every verified file in the cache with its size and last use. */
  private async entries(): Promise<Array<{ file: string; size: number; atimeMs: number }>> {
    const out: Array<{ file: string; size: number; atimeMs: number }> = [];
    const walk = async (dir: string, depth: number): Promise<void> => {
      const names = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const d of names) {
        const full = path.join(dir, d.name);
        if (d.isDirectory() && depth > 0) await walk(full, depth - 1);
        else if (d.isFile()) {
          const st = await stat(full).catch(() => undefined);
          if (st) out.push({ file: full, size: st.size, atimeMs: st.atimeMs });
        }
      }
    };
    for (const kind of ['md5', 'sha256']) {
      await walk(path.join(this.dir, 'parts', kind), 1);
      await walk(path.join(this.dir, 'templates', kind), 0);
    }
    return out;
  }

  /** The limit in force: the configured size, capped by what the disk can hold beside the cache. */
  private async limitFor(cacheBytes: number): Promise<number> {
    let limit = this.maxBytes;
    try {
      const fs = await statfs(this.dir);
      const free = fs.bavail * fs.bsize;
      const reserve = Math.max(1024 ** 3, 0.05 * fs.blocks * fs.bsize);
      limit = Math.min(limit, Math.max(0, cacheBytes + free - reserve));
    } catch {
      // no statfs (or no directory yet): the configured size stands
    }
    this.stats_.limit = limit;
    return limit;
  }

  /**
   * limitFor, computed again only every 2 s or 128 MiB of additions: our own additions take as much free
   * space as they add to the cache, so they leave the limit unchanged; only other users of the disk move it.
   */
  private async recentLimit(cacheBytes: number): Promise<number> {
    const last = this.lastLimit;
    if (last && Date.now() - last.at < 2000 && Math.abs(cacheBytes - last.cacheBytes) < 128 << 20) return last.limit;
    const limit = await this.limitFor(cacheBytes);
    this.lastLimit = { at: Date.now(), cacheBytes, limit };
    return limit;
  }

  private async count(): Promise<void> {
    const all = await this.entries();
    this.counted = { bytes: all.reduce((n, e) => n + e.size, 0), files: all.length, at: Date.now() };
    this.stats_.bytes = this.counted.bytes;
    this.stats_.files = this.counted.files;
  }

  /** Runs `op` after every commit and trim queued before it (see sizeQueue). */
  private queued<T>(op: () => Promise<T>): Promise<T> {
    const run = this.sizeQueue.then(op);
    this.sizeQueue = run.catch(() => undefined);
    return run;
  }

  /** Brings the cache under its limit (a mount's end: other processes may have added files meanwhile). */
  async trim(): Promise<void> {
    if (this.stats_.added === 0) return;
    await this.queued(() => this.evict(0));
  }

  /** The cache's bytes as counted, counted again when that is old (other processes add files too). */
  private async cacheBytes(): Promise<number> {
    if (!this.counted || Date.now() - this.counted.at > RESCAN_MS) await this.count();
    return this.counted!.bytes;
  }

  private countAdded(size: number): void {
    if (!this.counted) return;
    this.counted.bytes += size;
    this.counted.files++;
    this.stats_.bytes = this.counted.bytes;
    this.stats_.files = this.counted.files;
  }

  /** Evicts what it takes for `incoming` more bytes to fit under the limit. */
  private async makeRoom(incoming: number): Promise<void> {
    const bytes = await this.cacheBytes();
    if (bytes + incoming <= (await this.recentLimit(bytes))) return;
    await this.evict(incoming);
  }

  /**
   * Removes least recently used files until the cache plus `incoming` bytes is under 90% of its limit (or
   * holds nothing else, when `incoming` alone is more than that).
   */
  private async evict(incoming: number): Promise<void> {
    const all = await this.entries();
    let total = all.reduce((n, e) => n + e.size, 0);
    const limit = await this.limitFor(total);
    const target = total + incoming > limit ? Math.max(0, Math.floor(limit * LOW_WATER) - incoming) : total;
    all.sort((a, b) => a.atimeMs - b.atimeMs);
    let files = all.length;
    for (const e of all) {
      if (total <= target) break;
      try {
        await unlink(e.file);
        this.stats_.evictions++;
        this.stats_.evictedBytes += e.size;
      } catch {
        // gone already (another process evicted it)
      }
      total -= e.size;
      files--;
    }
    this.counted = { bytes: total, files, at: Date.now() };
    this.stats_.bytes = total;
    this.stats_.files = files;
  }

  /** Counts the cache now if it was never counted (for `status`). */
  async refreshStats(): Promise<CacheStats> {
    if (!this.counted) await (this.scanning ??= this.count().finally(() => (this.scanning = undefined)));
    if (!this.stats_.limit) await this.limitFor(this.counted?.bytes ?? 0);
    return this.stats();
  }

  stats(): CacheStats {
    return { ...this.stats_ };
  }
}

/** A held lock, refreshed until released. */
class Lock {
  private readonly timer: NodeJS.Timeout;
  private released = false;

  constructor(
    readonly file: string,
    private readonly onRelease: () => void,
  ) {
    this.timer = setInterval(() => {
      const now = Date.now() / 1000;
      void utimes(file, now, now).catch(() => undefined);
    }, HEARTBEAT_MS);
    this.timer.unref();
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    this.onRelease();
    await unlink(this.file).catch(() => undefined);
  }
}

/**
 * The right to write one cache file: bytes go to a temporary file (`fh`, at their final positions),
 * then `commit` hashes it and renames it into place only if a checksum matched.
 */
export class CacheWriter {
  private done = false;

  constructor(
    private readonly cache: PartCache,
    readonly space: CacheSpace,
    readonly final: string,
    readonly tmp: string,
    readonly fh: FileHandle,
    private readonly lock: Lock,
  ) {}

  /** Sets the temporary file's size (holes read as zeros until written). */
  async allocate(size: number): Promise<void> {
    await this.fh.truncate(size);
  }

  /**
   * Verifies the written bytes against `sums` (any one matching is enough) and moves them into place.
   * Returns undefined on a mismatch (the temporary file stays open for another try).
   */
  async commit(sums: SumCheck[]): Promise<LocalCopy | undefined> {
    if (this.done) throw new Error('cache writer already finished');
    const copy = await this.cache.verifyAndCommit(this.tmp, this.final, this.fh, sums);
    if (copy) await this.finish(false);
    return copy;
  }

  /** Gives up: removes the temporary file and releases the lock. */
  async abort(): Promise<void> {
    if (!this.done) await this.finish(true);
  }

  private async finish(removeTmp: boolean): Promise<void> {
    this.done = true;
    await this.fh.close().catch(() => undefined);
    if (removeTmp) await unlink(this.tmp).catch(() => undefined);
    await this.lock.release();
  }
}
