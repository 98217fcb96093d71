import { statfs, unlink } from 'node:fs/promises';
import path from 'node:path';
import { eachLimit } from '../util/each-limit.js';
import { freeSpaceCap } from './free-space-cap.js';
import type { CacheFs } from './cache-fs.js';
import { SizeLedger, type SizeCount } from './size-ledger.js';
import { atExitEnd } from '../util/exit-leftovers.js';
import { idleResumeFiles, type ClaimLock } from './resume-leftovers.js';
import { countedFiles, dropCounted, type CountedFile } from './counted-files.js';
import { SPILL_DIR } from './spill-name.js';

/** The shared count is checked against the files this often (it drifts when a process dies mid-commit). */
const RESCAN_MS = 60_000;
/** How long a commit waits for the shared count's lock before it goes on without it (a stopped process holds it). */
export const LEDGER_WAIT_MS = 5_000;
/** Eviction goes down to this share of the limit, so that not every commit has to evict. */
const LOW_WATER = 0.9;
/** The numbers the size limit keeps in the cache's stats (see CacheStats). */
export interface SizeStats {
  bytes: number;
  files: number;
  limit: number;
  evictions: number;
  evictedBytes: number;
}

/** An op waiting for its turn (CacheEviction.queued or admit). */
interface Waiting {
  op: () => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** Set for an admission: the size of the file its op adds. */
  bytes?: number;
}

/** The cross-process lock around a commit's count, room and rename (cache-lock.ts `waitLock`). */
export type SizeLock = () => Promise<{ release(): Promise<void> } | undefined>;

/**
 * The cache's size limit: counting what the cache holds, the free-space cap, and least-recently-used
 * eviction. Every commit first makes room for itself, evicting down to 90% of the limit, so the cache
 * never holds more than the limit, and a part larger than the limit alone is the only excess. Files
 * handed out are not spared: a reader that has the file open keeps its bytes (an unlinked file lives
 * until closed, and a verified file is never written again), and one that had not opened it yet finds it
 * gone and locates the part again (re-fetch). Sparing them is what let a mount hold 5× its limit.
 *
 * Fields: `counted` (bytes and files as last counted, plus this process's additions), `scanning` (a count
 * under way for refreshStats), `lastLimit` (the free-space cap, reused for a while), `stats` (only the
 * SizeStats fields of the cache's stats object). Order: commits, removals and trims run in turn, in batches
 * (`waiting`), and across processes under the `size` lock; each commit's room is made (count, cap, evict) before
 * its rename, so two commits never both count the room one of them is about to fill (commits that fit without
 * evicting anything share a turn: runTurn). The count is shared:
 * `parts/size.json` (bytes, files, when last counted from the files) is read after taking the lock and
 * written before releasing it, so every process sees what the others added (each counting on its own let
 * 8 mounts on one cache hold 1.3× its limit).
 */
export class CacheEviction {
  private counted: SizeCount | undefined;
  private scanning: Promise<void> | undefined;
  /**
   * Commits, removals and trims waiting for the next batch, in order. An admission (`bytes` set: a file added by `admit`) has
   * room made for it before its op; see drain for the ones that run together.
   */
  private waiting: Waiting[] = [];
  private draining: Promise<void> | undefined;
  /** The last size limit computed from the free disk space, reused for a while (a statfs per part was measurable). */
  private lastLimit: { at: number; cacheBytes: number; limit: number } | undefined;

  /** The shared count's file (`parts/size.json`), kept open. */
  private readonly ledger: SizeLedger;
  /** Told of the files each eviction removed (PartCache: DiskRoom.evicted, so that readers close them and free their blocks). */
  onEvicted: (files: string[]) => void = () => undefined;

  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly stats: SizeStats,
    private readonly sizeLock: SizeLock,
    fs: CacheFs,
    /** A checksum's lock, taken to remove a resumable download's leftover (no writer may take it over meanwhile). */
    private readonly claim: ClaimLock,
  ) {
    this.ledger = new SizeLedger(path.join(dir, 'parts', 'size.json'), fs);
  }

  /**
   * The limit in force: the configured size, capped by what the disk can hold beside the cache. `onDisk`: bytes of ours
   * the free space no longer shows but the cache would not add (a resumed download's): counted as free, this limit
   * is that download's only, and not shown.
   */
  private async limitFor(cacheBytes: number, onDisk = 0): Promise<number> {
    let limit = this.maxBytes;
    try {
      const fs = await statfs(this.dir);
      limit = Math.min(limit, freeSpaceCap(cacheBytes, fs.bavail * fs.bsize + onDisk, fs.blocks * fs.bsize));
    } catch {
      // no statfs (or no directory yet): the configured size stands
    }
    if (onDisk === 0) this.stats.limit = limit;
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

  /**
   * The limit in force now (limitFor, reused for a while as commits do): what a job may fetch ahead of its reader. The
   * cache's own bytes count as room (eviction frees them): before this process counted, the shared count is read,
   * without the lock (a torn read counts none, which only makes the limit lower).
   */
  async limitInForce(): Promise<number> {
    const count = this.counted ?? (await this.ledger.readCount(Infinity));
    return this.recentLimit(count?.bytes ?? 0);
  }

  private async count(): Promise<void> {
    await this.ledger.clearLeftoversMark(); // (this count takes them)
    this.counted = countOf(await countedFiles(this.dir));
    this.showCount();
  }

  /**
   * The leftovers counted again, the rest as counted (leftoversChanged): a look at `parts/tmp`, not a walk of every
   * part (20,000 parts took a second, holding the size lock). A count without their share (older versions') is taken
   * whole.
   */
  private async countLeftovers(): Promise<void> {
    const was = this.counted;
    if (was?.leftBytes === undefined || was.leftFiles === undefined) return this.count();
    await this.ledger.clearLeftoversMark();
    const left = countOf(await idleResumeFiles(this.dir));
    const [bytes, files] = [Math.max(0, was.bytes - was.leftBytes + left.bytes), Math.max(0, was.files - was.leftFiles + left.files)];
    this.counted = { bytes, files, at: was.at, leftBytes: left.bytes, leftFiles: left.files };
    this.showCount();
  }

  private showCount(): void {
    this.stats.bytes = this.counted?.bytes ?? 0;
    this.stats.files = this.counted?.files ?? 0;
  }

  /**
   * Runs `op` after every commit and trim queued before it (see `waiting`), holding the size lock, with the
   * shared count read before and written after it. Ops queued while a batch runs make the next batch: one lock,
   * one read and one write of the count for all of them (a commit per part paid ~8 file operations for these
   * alone, one part after another: 1,550 parts over HTTP spent seconds in that queue).
   *
   * Each caller is told as soon as its own op is done, and the next op waits a turn of the event loop: a commit's
   * caller opens its file before a later commit's makeRoom may evict it, as when each commit had its own lock.
   * `idle` says when the lock is released.
   */
  queued<T>(op: () => Promise<T>): Promise<T> {
    return this.enqueue(op);
  }

  /**
   * Adds a file of `bytes` to the cache: makes room for it (makeRoom), runs `add` (its rename into place), and counts
   * it, in turn with every other commit and trim (see queued).
   */
  admit<T>(bytes: number, add: () => Promise<T>): Promise<T> {
    return this.enqueue(add, bytes);
  }

  private enqueue<T>(op: () => Promise<T>, bytes?: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ op, resolve: resolve as (v: unknown) => void, reject, bytes });
      this.draining ??= this.drain();
    });
  }

  /** Resolves once no batch runs (the size lock is released, the count written). */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  /** Once no batch runs: lets go of the shared count's file (a later batch opens it again). */
  async close(): Promise<void> {
    await this.idle();
    await this.ledger.close();
  }

  private async drain(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0);
      let next = 0;
      try {
        const lock = await this.sizeLock();
        try {
          this.counted = await this.ledger.readCount(RESCAN_MS);
          if (this.counted) this.showCount();
          while (next < batch.length) {
            if (next > 0) await new Promise((r) => setImmediate(r));
            next = await this.runTurn(batch, next);
          }
          if (this.counted) await this.ledger.writeCount(this.counted);
        } finally {
          await lock?.release();
        }
      } catch (err) {
        for (const w of batch.slice(next)) w.reject(err); // those not run (an op's own failure went to its caller)
      }
    }
    this.draining = undefined; // in the same turn as the last check: an op queued after it starts a new drain
  }

  /**
   * Runs batch[at] and returns the index of the next op to run. Consecutive admissions that all fit under the limit
   * as it is run at once: nothing is evicted, so none can take another's room, and their renames need not wait for
   * each other (one after another, 1,550 small parts over HTTP queued here for seconds, each rename waiting behind
   * the file reads of the image stream). An admission that needs an eviction runs alone, so that the limit holds
   * after every commit as before.
   */
  private async runTurn(batch: Waiting[], at: number): Promise<number> {
    const first = batch[at]!;
    if (first.bytes === undefined) {
      await first.op().then(first.resolve, first.reject);
      return at + 1;
    }
    let end = at;
    let incoming = 0;
    while (end < batch.length && batch[end]!.bytes !== undefined) incoming += batch[end++]!.bytes!;
    const bytes = await this.cacheBytes();
    if (bytes + incoming <= (await this.recentLimit(bytes))) {
      await Promise.all(batch.slice(at, end).map((w) => this.runAdmission(w)));
      return end;
    }
    await this.makeRoom(first.bytes).then(() => this.runAdmission(first), first.reject);
    return at + 1;
  }

  /** An admission's op once there is room for it; counts its file if the op succeeded. */
  private async runAdmission(w: Waiting): Promise<void> {
    await w.op().then((v) => {
      this.countAdded(w.bytes!);
      w.resolve(v);
    }, w.reject);
  }

  /** Brings the cache under its limit (a mount's end: other processes may have added files meanwhile). */
  async trim(): Promise<void> {
    await this.queued(() => this.evict(0));
  }

  /** The cache's bytes as counted (shared, read by queued), counted from the files when there is no recent count. */
  private async cacheBytes(): Promise<number> {
    if (!this.counted || Date.now() - this.counted.at > RESCAN_MS) await this.count();
    else if (await this.ledger.leftoversMarked()) await this.countLeftovers();
    return this.counted!.bytes;
  }

  /**
   * A resumable download's leftover was left (a writer gave up) or taken up (a writer of its checksum began): the limit
   * counts a leftover only while no writer holds it (resume-leftovers.ts), so the next admission, of any process, counts
   * the leftovers again (SizeLedger.markLeftovers; countLeftovers). Counted only once a minute before, a fresh leftover
   * was left out (the limit was passed by its size) and a resumed one counted twice. Call it once the checksum's lock
   * is let go, or taken.
   */
  leftoversChanged(): void {
    this.ledger.markLeftovers();
  }

  /**
   * leftoversChanged at the process's end (a Ctrl-C), once its locks are removed (exit-leftovers.ts atExitEnd): made
   * before, a count of another process in between saw the lock still there and left the leftover out.
   */
  leftoversChangedAtExit(): void {
    atExitEnd(() => this.ledger.markLeftovers());
  }

  /** A file of `size` bytes was renamed into the cache (by an admission). */
  private countAdded(size: number): void {
    if (!this.counted) return;
    this.counted.bytes += size;
    this.counted.files++;
    this.showCount();
  }

  /**
   * Removes files that leave the cache other than by eviction, each taken off the count in the same turn of the queue:
   * a count of the files (this process's or another's) that came between a file's unlink and its count would have it
   * subtracted twice. `sizeOf` says, just before the unlink, whether a file still goes (its size) or stays (undefined):
   * a check made before the turn could be seconds old. Removed all the same, uncounted, if the turn fails.
   */
  async remove<T extends { path: string }>(files: readonly T[], sizeOf: (file: T) => Promise<number | undefined>): Promise<void> {
    if (files.length === 0) return;
    const unlinkAll = (count: boolean): Promise<void> =>
      eachLimit(files, 8, async (file) => {
        const size = await sizeOf(file).catch(() => undefined);
        if (size !== undefined && (await unlink(file.path).then(() => true, () => false)) && count) this.countRemoved(size);
      });
    await this.queued(() => unlinkAll(true)).catch(() => unlinkAll(false));
  }

  /** A file of `size` bytes left the cache (inside queued); `leftover`: one of the leftovers (their share goes down too). */
  private countRemoved(size: number, leftover = false): void {
    const c = this.counted;
    if (!c) return;
    c.bytes = Math.max(0, c.bytes - size);
    c.files = Math.max(0, c.files - 1);
    if (leftover && c.leftBytes !== undefined && c.leftFiles !== undefined) [c.leftBytes, c.leftFiles] = [Math.max(0, c.leftBytes - size), Math.max(0, c.leftFiles - 1)];
    this.showCount();
  }

  /**
   * Room on the disk for downloads in flight (disk-room.ts): evicts least recently used parts that `spare` does not
   * keep until `bytes` are freed, in turn with commits.
   */
  free(bytes: number, spare: (file: string) => boolean): Promise<{ freed: string[]; bytes: number }> {
    return this.queued(async () => {
      await this.cacheBytes();
      // Not the templates and spills: each session holds its own open all along, so their blocks would not come free.
      const kept = [path.join(this.dir, 'templates', ''), path.join(this.dir, SPILL_DIR, '')];
      const all = (await countedFiles(this.dir)).filter((e) => !kept.some((dir) => e.file.startsWith(dir)));
      all.sort((a, b) => a.atimeMs - b.atimeMs);
      const freed: string[] = [];
      let n = 0;
      for (const e of all) {
        if (n >= bytes) break;
        if (spare(e.file) || !(await dropCounted(e, this.claim))) continue;
        freed.push(e.file);
        n += e.size;
        this.stats.evictions++;
        this.stats.evictedBytes += e.size;
        this.countRemoved(e.size, e.lockName !== undefined);
      }
      if (freed.length > 0) this.onEvicted(freed);
      return { freed, bytes: n };
    });
  }

  /** Evicts what it takes for `incoming` more bytes to fit under the limit (an admission's turn). */
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
    await this.ledger.clearLeftoversMark(); // (this count takes them)
    const all = await countedFiles(this.dir);
    let total = all.reduce((n, e) => n + e.size, 0);
    const limit = await this.limitFor(total);
    const target = total + incoming > limit ? Math.max(0, Math.floor(limit * LOW_WATER) - incoming) : total;
    all.sort((a, b) => a.atimeMs - b.atimeMs);
    const evicted: string[] = [];
    let gone = 0;
    for (const e of all) {
      if (total <= target) break;
      if (await dropCounted(e, this.claim)) {
        evicted.push(e.file);
        this.stats.evictions++;
        this.stats.evictedBytes += e.size;
      }
      // (Else gone already, evicted by another process; or a leftover a writer took up since it was listed: a download in
      // flight, which is counted once committed.)
      total -= e.size;
      gone++;
    }
    if (evicted.length > 0) this.onEvicted(evicted);
    this.counted = countOf(all.slice(gone));
    this.showCount();
  }

  /**
   * Counts the cache now if it was never counted, and the limit if never computed (for `status`). With `onDisk`: the
   * limit for a download that has that many bytes written already (limitFor).
   */
  async refresh(onDisk = 0): Promise<number> {
    if (!this.counted) await (this.scanning ??= this.count().finally(() => (this.scanning = undefined)));
    if (onDisk > 0) return this.limitFor(this.counted?.bytes ?? 0, onDisk);
    return this.stats.limit || this.limitFor(this.counted?.bytes ?? 0);
  }
}

/** The count of `files` as counted now, with the leftovers' share (SizeCount). */
function countOf(files: CountedFile[]): SizeCount {
  const left = files.filter((e) => e.lockName !== undefined);
  const sum = (list: CountedFile[]): number => list.reduce((n, e) => n + e.size, 0);
  return { bytes: sum(files), files: files.length, at: Date.now(), leftBytes: sum(left), leftFiles: left.length };
}
