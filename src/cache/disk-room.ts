import { statfs } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { JigdoError } from '../format/errors.js';
import { grouped } from '../util/grouped.js';

/** Whoever reads cache files in this process (a PartStore): which ones it still needs, and which went. */
export interface CacheWatcher {
  /**
   * Whether `file` is needed: `reading` only, the ones read right now (an unlinked file that is open keeps its
   * blocks); else also the ones located and not yet passed by a sequential reader.
   */
  holds(file: string, readingOnly: boolean): boolean;
  /** These files were evicted to make room: the watcher closes the ones it has open and no read uses (freeing their blocks). */
  gone(files: string[]): void;
}

/** Evicts least recently used cache files that `spare` does not keep, until `bytes` are freed (CacheEviction.free). */
export type Evictor = (bytes: number, spare: (file: string) => boolean) => Promise<{ freed: string[]; bytes: number }>;

/** A download's reserved room is given back once, when its writer is done. */
export type Release = () => void;

/** How many bytes of its file a download in flight has written (the blocks of a sparse temporary file). */
export type Written = () => Promise<number>;

/** While a download waits for room this long, the parts located ahead of a reader and not read yet are spared. */
const SPARE_WANTED_MS = 2_000;
/** With no download of ours in flight and nothing left to evict, room is waited for this long (open files closing). */
const GIVE_UP_MS = 5_000;
/** A statfs is reused for this long while the free space it showed, less what we wrote since, is far above the need. */
const STATFS_MS = 2_000;
const STATFS_MARGIN = 256 << 20;
/**
 * Evicted files whose blocks the free space does not show yet are waited for this long before more is evicted: another
 * process that has them open closes them within its sweep (SWEEP_MS, part-store's UnlinkedSweep); evicting again at
 * once, every 100 ms, unlinked the whole cache for nothing.
 */
const HELD_MS = 3_000;

const size = (n: number): string => `${grouped(n)} bytes`;

/**
 * The disk room for downloads in flight: a part's bytes go to a temporary file before they are committed (and
 * counted against the size limit: cache-eviction.ts), so on a small file system the downloads running at once
 * (a reader's prefetch starts dozens) filled it and failed with ENOSPC while older parts sat in the cache.
 * Each download reserves its part's size before its first byte (`reserve`); a reservation is granted only while the
 * free space, less what the downloads of this process have yet to write (their files are sparse: `inFlight`), holds
 * it; otherwise least recently used parts are evicted for it (sparing those a reader still needs, for a while:
 * CacheWatcher), or it waits for a download of ours to end. A part the file system cannot hold even empty fails at once, with one line naming the sizes.
 *
 * Fields: `outstanding` (bytes reserved and not released), `releasedSince` (bytes released since the last statfs:
 * committed, they took free space the statfs did not see), `last` (that statfs), `waiters` (reservations waiting
 * for a release), `watchers` (the readers of this process), `inFlight` (reservations that can say what they wrote).
 */
export class DiskRoom {
  private outstanding = 0;
  private releasedSince = 0;
  /** Bytes released since this process started (othersFree). */
  private releasedTotal = 0;
  private last: { at: number; free: number; total: number } | undefined;
  private waiters: Array<() => void> = [];
  private readonly watchers = new Set<CacheWatcher>();
  /** The reservations of downloads that can say how much they wrote (grant's `written`), by their release. */
  private readonly inFlight = new Map<object, { bytes: number; written: Written }>();

  constructor(
    private readonly dir: string,
    private readonly evict: Evictor,
  ) {}

  /** Adds a reader of this process's cache files; returns its removal. */
  watch(w: CacheWatcher): () => void {
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  /** Files evicted (for room, or by the size limit: CacheEviction.onEvicted): readers close them once no read uses them. */
  evicted(files: string[]): void {
    for (const w of this.watchers) w.gone(files);
  }

  private holds(file: string, readingOnly: boolean): boolean {
    for (const w of this.watchers) if (w.holds(file, readingOnly)) return true;
    return false;
  }

  /** Free bytes and size of the cache's file system; undefined when it cannot be asked (no limit is applied then). */
  private async space(bytes: number): Promise<{ free: number; total: number } | undefined> {
    const last = this.last;
    if (last && Date.now() - last.at < STATFS_MS && last.free - this.releasedSince - this.outstanding - bytes > STATFS_MARGIN) {
      return { free: last.free - this.releasedSince, total: last.total };
    }
    const fs = await statfs(this.dir).catch(() => undefined);
    if (!fs) return undefined;
    this.last = { at: Date.now(), free: fs.bavail * fs.bsize, total: fs.blocks * fs.bsize };
    this.releasedSince = 0;
    return { free: this.last.free, total: this.last.total };
  }

  /**
   * Waits until `bytes` more can be written into the cache's file system beside the other downloads in flight, making
   * room by eviction; `what` names the file in the error when it never can be (the file system is too small, or
   * others fill it).
   */
  async reserve(bytes: number, what: string, written?: Written): Promise<Release> {
    const started = Date.now();
    let stuckSince: number | undefined;
    let held: { mark: number; bytes: number; since: number } | undefined;
    for (;;) {
      let space = await this.space(bytes);
      // Metadata (folders, lock files, the shared count) takes a few blocks beside the parts.
      const slack = space ? Math.min(1 << 20, Math.floor(space.total / 32)) : 0;
      let room = space ? space.free - this.outstanding - slack : Infinity;
      if (room < bytes && this.inFlight.size > 0) {
        // The downloads in flight write sparse files: what they wrote is gone from the free space already, and only
        // what they have yet to write is still to come. Counted before a new statfs, so that bytes written in between
        // count twice (too little room, never too much); counting whole reservations evicted parts for nothing.
        const measured = await this.writtenInFlight();
        this.last = undefined;
        space = await this.space(bytes);
        room = space ? space.free - (this.outstanding - this.stillWritten(measured)) - slack : Infinity;
      }
      if (room >= bytes) return this.grant(bytes, written);
      if (bytes > space!.total - slack) {
        throw new JigdoError(this.dir, `${what} needs ${size(bytes)}, more than this file system holds (${size(space!.total)}): no space (ENOSPC)`);
      }
      // What was just evicted may still be open (a reader of ours closes it at once: CacheWatcher.gone; another
      // process's within its sweep): until the free space shows it, or for HELD_MS, nothing more is evicted.
      if (held && Date.now() - held.since < HELD_MS && !(await this.cameBack(held.mark, held.bytes - slack))) {
        await this.released(100);
        this.last = undefined;
        continue;
      }
      held = undefined;
      const readingOnly = Date.now() - started >= SPARE_WANTED_MS;
      const mark = await this.othersFree();
      const evicted = await this.evict(bytes - room, (file) => this.holds(file, readingOnly));
      if (evicted.freed.length > 0) {
        held = { mark, bytes: evicted.bytes, since: Date.now() };
        this.last = undefined;
        stuckSince = undefined;
        continue;
      }
      if (this.outstanding > 0) {
        await this.released(500);
        continue;
      }
      stuckSince ??= Date.now();
      if (Date.now() - stuckSince >= GIVE_UP_MS && readingOnly) {
        throw new JigdoError(
          this.dir,
          `${what} needs ${size(bytes)}, and the cache's file system has ${size(space!.free)} free of ${size(space!.total)} with nothing left to evict: no space (ENOSPC)`,
        );
      }
      this.last = undefined;
      await sleep(200);
    }
  }

  /** Bytes each download in flight has written so far, by its reservation (at most its size; one that cannot tell: none). */
  private async writtenInFlight(): Promise<Map<object, number>> {
    const each = await Promise.all([...this.inFlight].map(async ([token, r]) => [token, Math.min(r.bytes, await r.written().catch(() => 0))] as const));
    return new Map(each);
  }

  /**
   * What the downloads still in flight had written when `measured`. One released since then (committed, or given up) is
   * out of `outstanding` already and does not count here: counting what it had written as well gave room that was not
   * there (a mount on a 10 MB tmpfs then failed reads with ENOSPC, about one run in three). One granted since then has
   * written nothing that was measured.
   */
  private stillWritten(measured: Map<object, number>): number {
    let written = 0;
    for (const token of this.inFlight.keys()) written += measured.get(token) ?? 0;
    return written;
  }

  private grant(bytes: number, written?: Written): Release {
    this.outstanding += bytes;
    const token = {};
    if (written) this.inFlight.set(token, { bytes, written });
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.inFlight.delete(token);
      this.outstanding -= bytes;
      this.releasedSince += bytes;
      this.releasedTotal += bytes;
      for (const wake of this.waiters.splice(0)) wake();
    };
  }

  /** Resolves when a reservation is released, or after `ms`. */
  private released(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /**
   * A write into the cache failed with ENOSPC anyway (another process, or another user of the disk, filled it): evicts
   * parts no read of ours uses for `bytes`; false when there was nothing to evict.
   */
  async afterFull(bytes: number): Promise<boolean> {
    const mark = await this.othersFree();
    const evicted = await this.evict(bytes, (file) => this.holds(file, true));
    this.last = undefined;
    // As in reserve: the download resumes once the evicted files' blocks are back (or HELD_MS passed), not into a disk
    // still full of files another process holds open (its two tries would both fail).
    for (const since = Date.now(); evicted.freed.length > 0 && Date.now() - since < HELD_MS; await sleep(100)) {
      if (await this.cameBack(mark, evicted.bytes)) break;
    }
    return evicted.freed.length > 0;
  }

  /**
   * The free space as only others move it: plus what this process's downloads wrote (in flight, and released since it
   * started: committed, their bytes stay). Counted before the statfs, so that bytes written in between look like
   * others': the mark taken before an eviction is low, never high. Infinity without a statfs.
   */
  private async othersFree(): Promise<number> {
    const measured = await this.writtenInFlight();
    // (A download released meanwhile counts once, all of it, in releasedTotal.)
    const ours = this.releasedTotal + this.stillWritten(measured);
    const fs = await statfs(this.dir).catch(() => undefined);
    return fs ? fs.bavail * fs.bsize + ours : Infinity;
  }

  /** At least `bytes` came back since `mark` (othersFree before an eviction): whoever had the evicted files open closed them. */
  private async cameBack(mark: number, bytes: number): Promise<boolean> {
    return mark === Infinity || (await this.othersFree()) - mark >= bytes;
  }
}
