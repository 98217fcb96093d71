import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { hasFastMetadata } from '../util/file-systems.js';

/** A synchronous call that took longer than this sends every later one through libuv's pool (a busy journal, a slow disk). */
export const SLOW_CALL_MS = 20;

/**
 * The metadata calls the cache makes for every part (a stat, a lock's link and unlink, the rename, the times, a new
 * file's size): made synchronously while they are fast where the cache's file system has fast metadata (ext2/3/4,
 * XFS, Btrfs, tmpfs, F2FS: util/file-systems.ts), else through libuv's pool as fs/promises does. Each call through the
 * pool costs the main thread ~20 µs on the machines here (waking a pool thread, then the completion) against ~1 µs for
 * the system call itself (fstat: 43 µs round trip, 20 µs of the main thread's CPU, against 1.3 µs fstatSync), and a
 * mount over HTTP made ~18 of them per part on the thread that answers FUSE's reads (BENCHMARKS.md, "The cache's
 * metadata calls").
 *
 * Only calls that never wait for a file's data: no reads or writes, no removal of a file's last name (the ledger's
 * rewrite took 6 ms once, its truncation waiting for the page's writeback). Never synchronous on another file system
 * (overlayfs copies a lower layer's file up on utimes, ZFS throttles, network and FUSE ones ask a server), nor until
 * the file system is known (`ready`), nor after one call took longer than SLOW_CALL_MS: from then on the event loop
 * never waits for the cache's disk again. Every method returns a promise, settled as fs/promises' would be, so callers
 * do not know which way a call went.
 */
export class CacheFs {
  private sync = false;
  /** Settles once the file system is known (and the calls may go synchronously). */
  readonly ready: Promise<void>;

  constructor(
    dir: string,
    /** The clock the calls are timed with (a test's). */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.ready = hasFastMetadata(dir).then((fast) => void (this.sync = fast));
  }

  /** Whether calls go synchronously now. */
  get synchronous(): boolean {
    return this.sync;
  }

  private run<T>(syncCall: () => T, asyncCall: () => Promise<T>): Promise<T> {
    if (!this.sync) return asyncCall();
    const start = this.now();
    try {
      return Promise.resolve(syncCall());
    } catch (err) {
      return Promise.reject(err as Error);
    } finally {
      if (this.now() - start > SLOW_CALL_MS) this.sync = false;
    }
  }

  stat(file: string): Promise<fs.Stats> {
    return this.run(() => fs.statSync(file), () => fsp.stat(file));
  }

  /**
   * Only for a name whose inode keeps another (a lock, a file just linked to its new name): removing a file's last name
   * frees its pages, which waits for their writeback. Such removals go through fs/promises.
   */
  unlink(file: string): Promise<void> {
    return this.run(() => fs.unlinkSync(file), () => fsp.unlink(file));
  }

  link(existing: string, name: string): Promise<void> {
    return this.run(() => fs.linkSync(existing, name), () => fsp.link(existing, name));
  }

  rename(from: string, to: string): Promise<void> {
    return this.run(() => fs.renameSync(from, to), () => fsp.rename(from, to));
  }

  readdir(dir: string): Promise<string[]> {
    return this.run(() => fs.readdirSync(dir), () => fsp.readdir(dir));
  }

  utimes(file: string, atime: number, mtime: number): Promise<void> {
    return this.run(() => fs.utimesSync(file, atime, mtime), () => fsp.utimes(file, atime, mtime));
  }

  fstat(fh: FileHandle): Promise<fs.Stats> {
    return this.run(() => fs.fstatSync(fh.fd), () => fh.stat());
  }

  /** Only to size a new, empty file (shrinking one frees pages, which waits for their writeback). */
  ftruncate(fh: FileHandle, size: number): Promise<void> {
    return this.run(() => fs.ftruncateSync(fh.fd, size), () => fh.truncate(size));
  }

  futimes(fh: FileHandle, atime: number, mtime: number): Promise<void> {
    return this.run(() => fs.futimesSync(fh.fd, atime, mtime), () => fh.utimes(atime, mtime));
  }
}
