import { closeSync, constants, readFileSync, statSync, type Stats } from 'node:fs';
import { open, readdir, stat, unlink, utimes } from 'node:fs/promises';
import { openRegularSync, withRegularFile } from '../util/open-regular.js';
import path from 'node:path';
import { errorMessage, JigdoError } from '../format/errors.js';
import { CacheFs } from './cache-fs.js';
import { removeAtExit, removeQuietly } from '../util/exit-leftovers.js';
import { MadeDirs } from '../util/make-dirs.js';
import { ownerDead, ownerTag } from '../util/pid.js';

/**
 * The cache's lock protocol, shared with every other process of the user: the writer of a checksum's file
 * holds `locks/<space>-<kind>-<hex>.lock` (created with O_EXCL, refreshed every few seconds); others wait
 * for the file to appear or the lock to go away. A lock whose owner died (this host, pid gone) or went
 * silent is taken over; what killed processes left (locks, `tmp/*.partial`) is removed by the next one.
 *
 * A lock file is a hard link to this process's one lock inode (`tmp/HOSTTAG-PID-lock.spare`, naming its owner),
 * made with link(2), which fails with EEXIST like an O_EXCL create: taking and releasing a lock then allocates
 * and frees no inode. On file systems that keep freed inodes out of reuse for a while (ext4 without a journal,
 * as on this project's test machines) a create and an unlink per part and per commit made every later inode
 * allocation scan past thousands of recently deleted ones: 10-14 % of make-image's CPU over HTTP
 * (`recently_deleted`, `find_get_block_common`; BENCHMARKS.md). Where links do not work, locks are created.
 */

const HEARTBEAT_MS = 5_000;
/**
 * The lock inode's mtime is refreshed before a link at most this often: a waiter takes a lock for stale only after
 * LOCK_STALE_MS, and one utimes per lock was one more file operation on each fetched part's way through the cache.
 */
const SPARE_TOUCH_MS = 1_000;
/** A lock not refreshed for this long belongs to a dead or stuck process. */
export const LOCK_STALE_MS = 30_000;
/** Temporary files older than this are removed even when their owner cannot be checked. */
export const TMP_STALE_MS = 24 * 3600_000;
/** Cached files, temporary files and locks: private (a second local user must not learn what we fetched). */
export const FILE_MODE = 0o600;

/** Where the locks of the cache directory `dir` are. */
export function lockDirOf(dir: string): string {
  return path.join(dir, 'parts', 'locks');
}

/** The cache directory's temporary files (downloads under way, the processes' lock inodes). */
export function tmpDirOf(dir: string): string {
  return path.join(dir, 'parts', 'tmp');
}

/**
 * The locks of the cache directory `dir` for what runs without its PartCache (the hash index's saves: make-template and
 * local sessions have none): the same files and protocol, so a lock is the same whichever process takes it.
 */
export function cacheDirLocks(dir: string, log: (line: string) => void = () => undefined): CacheLocks {
  const dirs = new MadeDirs();
  return new CacheLocks(dir, lockDirOf(dir), tmpDirOf(dir), (d, op) => dirs.inDir(d, op), log, new CacheFs(dir));
}

/** Not refreshed for LOCK_STALE_MS, gone, or written by a dead process of this host. */
export async function lockIsStale(file: string): Promise<boolean> {
  const st = await stat(file).catch(() => undefined);
  if (!st) return true;
  // Not refreshed for long; or set far in the future (a clock put back, a host whose clock runs ahead), which no
  // refresh brings back within the wait: its owner, if alive, takes it again within a heartbeat.
  if (Math.abs(Date.now() - st.mtimeMs) > LOCK_STALE_MS) return true;
  const owner = await lockText(file);
  return owner === undefined || (owner !== '' && ownerDead(owner.trim() + '-'));
}

/**
 * A lock file's text (`OWNERTAG-TAKEN_MS`: createLock), '' while half-written, undefined when it is no regular file:
 * only those are read (a FIFO put among the locks hung every cache's start-up cleanup).
 */
function lockText(file: string): Promise<string | undefined> {
  return withRegularFile(file, constants.O_RDONLY, (fh) => fh.readFile('utf8').catch(() => '')).catch(() => undefined);
}

/** lockText, synchronously (at the process's exit). */
function lockTextSync(file: string): string | undefined {
  let fd: number;
  try {
    fd = openRegularSync(file, constants.O_RDONLY);
  } catch {
    return undefined;
  }
  try {
    return readFileSync(fd, 'utf8');
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}

/**
 * A lock inode by its number and birth time: a number alone is another file's once the inode was freed (its name
 * removed by a cleanup, the lock taken over), and ext4 hands a freed number out again at once. Birth 0: the file system
 * does not keep it (then only a lock's text tells: Lock.nameIsOurs).
 */
export interface LockInode {
  ino: number;
  birth: number;
}

/** `st` is the lock inode `id` (see LockInode). */
function isInode(st: Stats, id: LockInode | undefined): boolean {
  return id !== undefined && id.birth > 0 && st.ino === id.ino && st.birthtimeMs === id.birth;
}

/** The text of a lock this process took (createLock). */
const isOwnText = (text: string | undefined): boolean => text?.startsWith(`${ownerTag()}-`) === true;

/**
 * A held lock, refreshed until released, and removed at the process's exit if still held (exit-leftovers.ts).
 * Fields: `timer` (the heartbeat), `released` (release runs once), `unlist` (off the exit list).
 *
 * Removed only while its name is still this lock: a process stopped for longer than a lock stays fresh (Ctrl-Z, a
 * debugger) finds it taken over by another when it goes on, and removed that other's lock by its name (the part was
 * then fetched a third time; the size ledger's count drifted until its recount): see nameIsOurs.
 */
export class Lock {
  private readonly timer: NodeJS.Timeout;
  private released = false;
  private readonly unlist: () => void;

  constructor(
    readonly file: string,
    private readonly onRelease: () => void,
    /**
     * Set for a lock linked to the lock inode (its name is not the inode's last): the inode it links to, and the file
     * calls it is removed through (cache-fs.ts). Undefined for a created lock.
     */
    private readonly linked: { fs: CacheFs; inode: LockInode } | undefined,
  ) {
    this.timer = setInterval(() => {
      const now = Date.now() / 1000;
      void utimes(file, now, now).catch(() => undefined);
    }, HEARTBEAT_MS);
    this.timer.unref();
    this.unlist = removeAtExit(file, () => {
      const st = statSync(file, { throwIfNoEntry: false });
      return st !== undefined && (isInode(st, linked?.inode) || isOwnText(lockTextSync(file)));
    });
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    this.onRelease();
    // Off the exit list before the unlink: once it is done, the name may be another process's lock.
    this.unlist();
    if (!(await this.nameIsOurs())) return;
    await (this.linked ? this.linked.fs.unlink(this.file) : unlink(this.file)).catch(() => undefined);
  }

  /**
   * Whether the name is still this lock: a link to the lock inode it was made with (one stat), else a file whose text
   * names this process (a created lock; a link to a lock inode made again since; a file system without birth times).
   * Read through openRegular: a FIFO put there must not hang the release.
   */
  private async nameIsOurs(): Promise<boolean> {
    const st = await (this.linked ? this.linked.fs.stat(this.file) : stat(this.file)).catch(() => undefined);
    return st !== undefined && (isInode(st, this.linked?.inode) || isOwnText(await lockText(this.file)));
  }
}

/** Runs `op`, which creates something in `dir`, making `dir` first (again, if it was removed meanwhile). */
export type InDir = <T>(dir: string, op: () => Promise<T>) => Promise<T>;

/**
 * The locks of one cache directory held by this process, and the once-per-process cleanup.
 * Fields: `held` (lock files this process holds: a second fetch here waits like another process would),
 * `cleaned` (the cleanup, run once). No lock of its own: tryLock's O_EXCL create is the only arbiter.
 */
export class CacheLocks {
  private readonly held = new Set<string>();
  private cleaned: Promise<void> | undefined;
  /** False once link(2) failed for another reason than EEXIST/ENOENT: locks are created instead. */
  private linking = true;
  /** When this process last set the lock inode's mtime (linkLock), and the inode it then was; undefined: touch it next. */
  private spareSeen: { at: number; inode: LockInode } | undefined;
  /** Locks waitLock went on without, said once each. */
  private readonly warned = new Set<string>();

  constructor(
    private readonly cacheDir: string,
    private readonly lockDir: string,
    private readonly tmpDir: string,
    private readonly inDir: InDir,
    private readonly log: (line: string) => void,
    /** The calls made for every lock taken and released (cache-fs.ts). */
    private readonly fs: CacheFs,
  ) {}

  /** The lock `name`, or undefined while a live process (this one included) holds it. */
  async tryLock(name: string): Promise<Lock | undefined> {
    // A cleanup under way (started with the cache) judges locks stale and unlinks them: one taken over meanwhile,
    // this process's own, would go with it.
    if (this.cleaned) await this.cleaned;
    const file = path.join(this.lockDir, `${name}.lock`);
    if (this.held.has(file)) return undefined; // another fetch in this process (PartStore dedupes; templates may not)
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const linked = await this.linkLock(file);
        if (!linked) await this.createLock(file);
        this.held.add(file);
        return new Lock(file, () => this.held.delete(file), linked ? { fs: this.fs, inode: linked } : undefined);
      } catch (err) {
        // Named for what it is: a bare "ENOSPC: no space left on device, write" was shown under the mirrors' name.
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new JigdoError(this.lockDir, `cannot make a lock file: ${errorMessage(err)}`);
      }
      if (!(await lockIsStale(file))) return undefined;
      // Dead owner: take it over. Two processes doing this at once may both fetch the part; both results
      // are verified and renamed atomically, so that only costs bandwidth. One that cannot be removed (a folder by
      // that name, an immutable file) is named: waiting for it to go would never end.
      await unlink(file).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw new Error(`${file}: a stale lock that cannot be removed (${err.code ?? errorMessage(err)}): remove it by hand`);
      });
    }
    return undefined;
  }

  /** A new lock file naming this process (O_EXCL: fails with EEXIST when it exists). */
  private async createLock(file: string): Promise<void> {
    const fh = await this.inDir(path.dirname(file), () => open(file, 'wx', FILE_MODE));
    try {
      await fh.writeFile(`${ownerTag()}-${Date.now()}\n`);
    } catch (err) {
      await unlink(file).catch(() => undefined); // (an empty lock of ours, on a full disk: nobody would remove it but a cleanup)
      throw err;
    } finally {
      await fh.close();
    }
  }

  /**
   * The lock as a hard link to this process's lock inode, freshly touched first (a waiter judges staleness by
   * the mtime the moment the name appears). The lock inode when taken; false when links do not work here (the caller
   * creates it); throws EEXIST when it is held. A spare removed meanwhile (another process's cleanup) is made again.
   */
  private get spare(): string {
    return path.join(this.tmpDir, `${ownerTag()}-lock.spare`);
  }

  /**
   * Removes this process's lock inode (a cache's close, and the process's exit): nothing of ours stays in the
   * cache. Locks still held keep their own names (the inode lives on under them); a later lock makes a new one.
   */
  removeSpare(): void {
    removeQuietly(this.spare);
  }

  private async linkLock(file: string): Promise<LockInode | false> {
    const spare = this.spare;
    for (let attempt = 0; this.linking && attempt < 2; attempt++) {
      try {
        if (!this.spareSeen || Date.now() - this.spareSeen.at > SPARE_TOUCH_MS) {
          const now = Date.now() / 1000;
          await this.fs.utimes(spare, now, now);
          const st = await this.fs.stat(spare);
          this.spareSeen = { at: Date.now(), inode: { ino: st.ino, birth: st.birthtimeMs } };
        }
        // (The inode as it was before the link: one made again meanwhile by another call is not taken for it.)
        const { inode } = this.spareSeen;
        await this.inDir(path.dirname(file), () => this.fs.link(spare, file));
        return inode;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') throw err;
        if (code === 'ENOENT') {
          if (attempt > 0) return false; // gone again at once: create this lock
          await this.createLock(spare).catch((e: unknown) => {
            if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          });
          this.spareSeen = undefined; // (made by another call meanwhile, of whatever age: touch it)
          removeAtExit(spare);
          continue;
        }
        this.linking = false; // EPERM, ENOTSUP, EMLINK...: a file system without hard links
      }
    }
    return false;
  }

  /**
   * The lock `name`, waiting while another process holds it (polling, 2 ms doubling to 50 ms), or undefined
   * after `maxMs`: for short critical sections whose caller can go on without the lock at worst.
   */
  async waitLock(name: string, maxMs: number): Promise<Lock | undefined> {
    const until = Date.now() + maxMs;
    for (let delay = 2; ; delay = Math.min(50, delay * 2)) {
      let lock: Lock | undefined;
      try {
        lock = await this.tryLock(name);
      } catch (err) {
        // A stale lock that cannot be removed: going on without it at once, as after the wait (said once).
        if (!this.warned.has(name)) this.log(`cache: ${errorMessage(err)}; going on without it`);
        this.warned.add(name);
        return undefined;
      }
      if (lock || Date.now() >= until) return lock;
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  /**
   * Removes what killed processes left: their temporary files and locks. Once per process. `leftoverRemoved` is told
   * when a resumable download's leftover (`resume-…`, a day without a byte added) went: the size limit counts those
   * (CacheEviction.leftoversChanged), and the count kept its bytes for up to a minute. (The first call's is used.)
   */
  cleanOnce(leftoverRemoved: () => void = () => undefined): Promise<void> {
    return (this.cleaned ??= (async () => {
      for (const dir of [this.tmpDir, this.lockDir]) {
        const names = await readdir(dir).catch(() => [] as string[]);
        for (const name of names) {
          const file = path.join(dir, name);
          if (dir === this.lockDir) {
            if (await lockIsStale(file)) await unlink(file).catch(() => undefined);
            continue;
          }
          const st = await stat(file).catch(() => undefined);
          if (!st || !(ownerDead(name) || Date.now() - st.mtimeMs > TMP_STALE_MS)) continue;
          const removed = await unlink(file).then(() => true, () => false);
          if (removed && name.startsWith('resume-')) leftoverRemoved();
        }
      }
    })().catch((err) => this.log(`cache: cleanup of ${this.cacheDir} failed: ${errorMessage(err)}`)));
  }
}
