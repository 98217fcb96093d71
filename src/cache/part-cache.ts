import { unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hexOfKey, type ChecksumKind } from '../format/checksum.js';
import { eachUnchanged, identityOf, unchangedSize } from '../sources/file-identity.js';
import { commitIfMatches, underChecksumName, unhashedFetch, type HashFile, type LocalCopy, type SumCheck, type VerifiedCopy } from '../sources/verified-copy.js';
import { MadeDirs } from '../util/make-dirs.js';
import { BackgroundSync, syncFile } from './background-sync.js';
import { CacheEviction, LEDGER_WAIT_MS } from './cache-eviction.js';
import { CacheFs } from './cache-fs.js';
import { CacheLocks, lockDirOf, tmpDirOf, type Lock } from './cache-lock.js';
import { nameIfFree } from './exclusive-name.js';
import type { CacheStats } from './cache-stats.js';
import { CacheWriter, type TempFile } from './cache-writer.js';
import { DiskRoom } from './disk-room.js';
import { commitStamp, writtenSinceCommit } from './commit-stamp.js';
import { finalOf, UNHASHED, unhashedName } from './unhashed-name.js';
import { replaceWithOwnCopy } from './own-copy.js';
import { openResumeFile, openTempFile } from './temp-files.js';
import { PageRelease } from './page-release.js';
import { OpenWriters } from './open-writers.js';

/**
 * The disk cache of fetched parts and templates, shared by every process of the user.
 *
 * Content-addressed: a file's name is its checksum (`parts/md5/ab/ab12…`), and a file gets that name only
 * by a rename done after its bytes were hashed and matched (verified-copy.ts: commitIfMatches). So
 * whatever sits under a checksum name was verified when written (and not written to since: commit-stamp.ts). A process
 * that exits removes its downloads' temporary files and its locks (endWrites, exit-leftovers.ts); one killed (kill -9,
 * a crash) leaves at most a `tmp/*.partial` file (never taken as a part, removed by the next process that opens the
 * cache) and a lock file (taken over once its owner is dead or silent: cache-lock.ts).
 *
 * The one exception is asked for by make-image (verify once: ImageSession.deferChecks): a part fetched from a
 * mirror that proved right is kept beside its checksum name, as `HEX.OWNER-RANDOM.unverified`, without being hashed
 * (commitUnhashed; a new name for each download). It gets its checksum name once the image's checksum matched
 * (confirmUnhashed); a process that looks for the part before that, or after the job died, claims the file (a
 * rename to a new name of its own), hashes it and, only if it matches, gives it its checksum name by a link that fails
 * if the name is taken (adoptUnhashed, exclusive-name.ts), so a killed make-image still leaves its downloads for the rerun.
 *
 * Size: `--cache-size` (default 20 GiB) holds at every commit, capped by the free disk space (cache-eviction.ts);
 * downloads in flight reserve their room on the disk first (disk-room.ts).
 *
 * Privacy: folders are made 0700 (makeDirs) and files 0600, so that a second local user can read neither
 * what we fetched nor which parts we needed, even under a cache folder the user made with looser rights.
 */

export const DEFAULT_CACHE_BYTES = 20 * 1024 ** 3;
/** Access times are refreshed at most this often per file. */
const TOUCH_MS = 60_000;
/** Where a cache file goes: fetched parts, or downloaded templates. */
export type CacheSpace = 'parts' | 'templates';

export interface PartCacheOptions {
  /** The cache directory (`--cache-dir`); parts live in `DIR/parts`, templates in `DIR/templates`. */
  dir: string;
  /** `--cache-size` in bytes; undefined: the default. */
  maxBytes?: number;
  log?: (line: string) => void;
  /** Hashes a whole file: the worker pool. */
  hashFile: (file: string, kind: ChecksumKind) => Promise<Buffer>;
  dropPages?: (paths: string[]) => Promise<void>; // WorkerPool.dropPages, for leavePageCache; absent: nothing is dropped
  /** Record the unhashed parts this process adopts (takeAdopted): a job that removes what it downloaded removes those too. */
  trackAdopted?: boolean;
}

/**
 * Fields: `stats_` is shared: this class counts hits, misses, added and removedBad; `eviction` the sizes, limit and
 * evictions. `dirs` (folders made here), `locks` (lock files held here). Order in begin: the once-per-process
 * cleanup, the lock, the lookup (another process may have renamed the file since the caller looked), the temporary
 * file; after a wait for another process's lock, a lookup before the next try. In a commit: hash (outside any queue),
 * set the times, then the size queue's turn: make room (once for commits that fit together: CacheEviction.admit),
 * rename, count; the lock is released after the rename. An unhashed commit is synced after it, in the background.
 */
export class PartCache {
  readonly dir: string;
  private readonly log: (line: string) => void;
  private readonly hashFile: HashFile;
  private readonly pages: PageRelease; // files a reader is done with, leaving the page cache
  readonly eviction: CacheEviction; // (also admits template spill files: session.ts)
  /** Room on the disk for downloads in flight: reserved by each before its first write (CacheWriter.allocate). */
  readonly room: DiskRoom;
  private readonly locks: CacheLocks;
  /** The downloads into the cache not yet done, waited for at the end (endWrites). */
  private readonly writers = new OpenWriters();
  /** The metadata calls made for every part (cache-fs.ts). */
  private readonly fs: CacheFs;
  private readonly dirs = new MadeDirs(); // directories made by this process (one mkdir each, not one per part)
  private readonly stats_: CacheStats;
  /** Syncs this process's unhashed files (commitUnhashed) before confirmUnhashed names them; removes those it could not. */
  private readonly unhashedSync = new BackgroundSync(async (file) => {
    const st = await this.fs.stat(file).catch(() => undefined);
    if (st) await this.drop(file, st.size);
  });
  /** This process's unhashed files never to be synced (commitUnhashed, not durable): their pages stay until removed. */
  private readonly unsynced = new Set<string>();
  /** Unhashed parts of other runs this process adopted and named (only with `trackAdopted`): see takeAdopted. */
  private readonly adopted: VerifiedCopy[] = [];
  private readonly trackAdopted: boolean;

  constructor(opts: PartCacheOptions) {
    this.dir = path.resolve(opts.dir);
    this.log = opts.log ?? (() => undefined);
    this.hashFile = opts.hashFile;
    this.trackAdopted = opts.trackAdopted === true;
    this.pages = new PageRelease(opts.dropPages, (file) => this.unhashedSync.whenSynced(file), (file) => (file.endsWith(UNHASHED) ? finalOf(file) : file));
    this.stats_ = { dir: this.dir, bytes: 0, files: 0, limit: 0, hits: 0, misses: 0, added: 0, evictions: 0, evictedBytes: 0, removedBad: 0, adopted: 0 };
    const inDir = <T>(dir: string, op: () => Promise<T>): Promise<T> => this.dirs.inDir(dir, op);
    this.fs = new CacheFs(this.dir);
    this.locks = new CacheLocks(this.dir, lockDirOf(this.dir), this.tmpDir, inDir, this.log, this.fs);
    const sizeLock = (): Promise<Lock | undefined> => this.locks.waitLock('size', LEDGER_WAIT_MS);
    this.eviction = new CacheEviction(this.dir, opts.maxBytes ?? DEFAULT_CACHE_BYTES, this.stats_, sizeLock, this.fs, (name) => this.locks.tryLock(name));
    this.room = new DiskRoom(this.dir, (bytes, spare) => this.eviction.free(bytes, spare));
    this.eviction.onEvicted = (files) => this.room.evicted(files);
    void this.locks.cleanOnce(() => this.eviction.leftoversChanged()); // now: a run that fetched nothing left them
  }

  private get tmpDir(): string {
    return tmpDirOf(this.dir);
  }

  /** Where the verified file of a checksum lives. */
  private pathFor(space: CacheSpace, kind: ChecksumKind, hex: string): string {
    return space === 'parts' ? path.join(this.dir, 'parts', kind, hex.slice(0, 2), hex) : path.join(this.dir, 'templates', kind, `${hex}.template`);
  }

  /**
   * The cached, verified copy of a part (`length` bytes), or undefined. `named`: under its checksum name only, none
   * adopted (adopting costs a copy and a hash: not before the --scan copies), a miss not counted (the later look-up's).
   */
  async lookupPart(kind: ChecksumKind, key: string, length: number, named = false): Promise<VerifiedCopy | undefined> {
    const hex = hexOfKey(key);
    const copy = await (named ? this.lookupFile(this.pathFor('parts', kind, hex), length) : this.find('parts', kind, hex, length));
    if (copy) this.stats_.hits++;
    else if (!named) this.stats_.misses++;
    return copy;
  }

  /** The verified file of a checksum, or undefined (no hit or miss counted: templates, and tests). */
  lookup(space: CacheSpace, kind: ChecksumKind, hex: string): Promise<VerifiedCopy | undefined> {
    return this.lookupFile(this.pathFor(space, kind, hex));
  }

  /** A verified file by its checksum name, with its access time refreshed; a file of the wrong size is removed. */
  private async lookupFile(file: string, length?: number): Promise<VerifiedCopy | undefined> {
    const st = await this.fs.stat(file).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    // Cannot happen through this code (the name is given after verification, with a commit stamp): someone changed it.
    const changed = length !== undefined && st.size !== length ? `has ${st.size} bytes, expected ${length}` : writtenSinceCommit(st.mtimeMs) ? 'was written to since it was verified (its mtime)' : '';
    if (changed) {
      this.stats_.removedBad++;
      this.log(`cache: ${file} ${changed}: removed`);
      await unlink(file).catch(() => undefined);
      return undefined;
    }
    if (Date.now() - st.atimeMs <= TOUCH_MS) return underChecksumName(file, st);
    // Only atime changes: mtime is set to whole seconds at commit, so it is written back exactly. The
    // ctime moves, so the identity handed out is the one after the touch.
    await this.fs.utimes(file, Date.now() / 1000, st.mtimeMs / 1000).catch(() => undefined);
    const now = await this.fs.stat(file).catch(() => undefined);
    return now?.isFile() ? underChecksumName(file, now) : undefined;
  }

  /** The verified file of a checksum; for a part, else an unhashed one that hashes right (adoptUnhashed). */
  private async find(space: CacheSpace, kind: ChecksumKind, hex: string, length?: number): Promise<VerifiedCopy | undefined> {
    const final = this.pathFor(space, kind, hex);
    const copy = await this.lookupFile(final, length);
    return copy ?? (space === 'parts' ? this.adoptUnhashed(final, kind, hex, length) : undefined);
  }

  /**
   * An unhashed part (commitUnhashed) of this checksum, left by any process: claimed by renaming it to a name of ours
   * (of two processes, one rename wins; the other finds it gone), copied (replaceWithOwnCopy), hashed, and named only
   * if it matches. One proved wrong (a mirror's wrong bytes, a file cut by a crash) is removed; one that could not be
   * copied or hashed (the process is ending) stays, under our name, for whoever looks next.
   */
  private async adoptUnhashed(final: string, kind: ChecksumKind, hex: string, length?: number): Promise<VerifiedCopy | undefined> {
    const names = await this.fs.readdir(path.dirname(final)).catch(() => [] as string[]);
    const unhashed = names.filter((n) => n.startsWith(`${hex}.`) && n.endsWith(UNHASHED));
    // Neither an unhashed file nor the checksum name (committed since the caller looked): nothing to look at again.
    if (unhashed.length === 0 && !names.includes(path.basename(final))) return undefined;
    for (const name of unhashed) {
      const file = unhashedName(final);
      if (!(await this.fs.rename(path.join(path.dirname(final), name), file).then(() => true, () => false))) continue;
      const st = await this.fs.stat(file).catch(() => undefined);
      if (!st?.isFile()) continue;
      const sizeRight = length === undefined || st.size === length;
      if (sizeRight && !(await replaceWithOwnCopy(file, () => this.tempFile(), this.fs).then(() => true, () => false))) continue;
      let named = false;
      let copy: VerifiedCopy | undefined;
      try {
        copy = !sizeRight
          ? undefined
          : await commitIfMatches(this.hashFile, file, [[kind, Buffer.from(hex, 'hex')]], async () => {
              // Our copy, not synced yet: on the disk before it is named. One that cannot be synced goes.
              await syncFile(file).catch(async (err: unknown) => {
                await this.drop(file, st.size);
                throw err;
              });
              named = await this.nameOrDrop(file, final, st.size);
              return { path: final, offset: 0, ...identityOf(await this.fs.stat(final)) };
            });
      } catch {
        continue; // not hashed: it stays an unhashed file
      }
      if (copy && named) {
        this.stats_.adopted++;
        if (this.trackAdopted) this.adopted.push(copy);
        return copy;
      }
      if (copy) return this.lookupFile(final, length); // the checksum name was taken meanwhile: ours went
      this.stats_.removedBad++;
      this.log(`cache: ${file} (an unhashed download) ${sizeRight ? `does not hash to ${hex}` : `has ${st.size} bytes, expected ${length}`}: removed`);
      await this.drop(file, st.size);
    }
    return this.lookupFile(final, length); // (adopted by another process meanwhile)
  }

  /**
   * Gives the unhashed `file` its checksum name `final`, unless a file holds that name already (another process
   * fetched and committed the part, or named its own copy, meanwhile): then ours goes, and the shared count with it.
   * False then.
   */
  private async nameOrDrop(file: string, final: string, size: number): Promise<boolean> {
    if (await nameIfFree(file, final, this.fs)) return true;
    await this.drop(file, size);
    return false;
  }

  /** Removes a file of the cache that is no longer wanted, taking it off the shared count. */
  private drop(file: string, size: number): Promise<void> {
    return this.eviction.remove([{ path: file }], async () => size);
  }

  /**
   * Gets the right to write a checksum's file, or the file itself if it exists or another process
   * finishes it while we wait for its lock. `onWait` is called once if we had to wait for another process.
   * Its callers have just looked the file up (the cache provider, TemplateDownloads), so the first try goes
   * straight to the lock, and the lookup under the lock is what finds a file committed meanwhile: one stat
   * less per fetched part (BENCHMARKS.md, "fewer file-system calls per fetched part").
   * `resumable`: the writer's file outlives it and the process (temp-files.ts): the next writer goes on from its bytes.
   */
  async begin(space: CacheSpace, kind: ChecksumKind, hex: string, onWait?: () => void, resumable = false): Promise<{ copy: VerifiedCopy } | { writer: CacheWriter }> {
    const final = this.pathFor(space, kind, hex);
    await this.locks.cleanOnce();
    let delay = 20;
    let waited = false;
    for (;;) {
      if (this.writers.isEnded) throw new Error('the cache is closing: no new downloads');
      const copy = waited ? await this.find(space, kind, hex) : undefined; // finished by the process we waited for
      if (copy) return { copy };
      const lock = await this.locks.tryLock(`${space}-${kind}-${hex}`);
      if (lock) {
        try {
          // (Not looking for unhashed files again: one made since the caller looked costs a second download.)
          const again = await this.lookupFile(final);
          if (again) {
            await lock.release();
            return { copy: again };
          }
          const { file: tmp, fh, unlist } = resumable ? await openResumeFile(this.tmpDir, `${space}-${kind}-${hex}`, this.dirs, () => this.eviction.leftoversChanged()) : await this.tempFile();
          const writer = new CacheWriter(this, final, tmp, fh, lock, this.fs, unlist, resumable);
          await this.writers.add(writer); // (refused once endWrites ran: then aborted, its file and lock gone)
          return { writer };
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

  /** A new temporary file in the cache, this process's (temp-files.ts). */
  tempFile(): Promise<TempFile> {
    return openTempFile(this.tmpDir, this.dirs);
  }

  /**
   * Hashes `tmp` and, if one of `sums` matches, renames it to `final` (after making room for it), once its bytes
   * are on the disk: a checksum name is trusted without a hash, also after a crash. The sync runs while it is
   * hashed (the hash reads what the page cache holds, which a sync does not change): one after the other, each
   * part a mount fetched waited for both before a reader could have it (mount + cp over HTTP at 20 ms, alternated:
   * median 13.10 -> 12.12 s, BENCHMARKS.md). Returns only once the sync is over, matched or not: the caller may
   * close `fh` next. `size`: the file's size when the writer set it (CacheWriter.allocate), counted without
   * asking the file system.
   */
  async verifyAndCommit(tmp: string, final: string, fh: FileHandle, sums: SumCheck[], known?: SumCheck, size?: number): Promise<VerifiedCopy | undefined> {
    const synced = fh.datasync();
    synced.catch(() => undefined); // its failure fails the rename below; a mismatch needs no rename
    const hash: HashFile = known ? (file, kind) => (kind === known[0] ? Promise.resolve(known[1]) : this.hashFile(file, kind)) : this.hashFile;
    try {
      return await commitIfMatches(hash, tmp, sums, async () => {
        await synced;
        return this.place(tmp, final, fh, size);
      });
    } finally {
      await synced.catch(() => undefined);
    }
  }

  /**
   * Moves a fetched part into the cache unhashed, under a new name of its own beside `final` (unhashedName), for
   * a job that checks its whole output (see the class comment); confirmUnhashed gives it its checksum name. Synced
   * in the background (unhashedSync), not before the rename like a verified commit: whoever reads it before it is
   * named hashes it (adoptUnhashed), so a crash can cost its bytes but never pass wrong ones; only the checksum
   * name it may get needs its bytes on the disk, and confirmUnhashed waits for that. Takes `fh` once it returns; if it
   * throws, `fh` stays the caller's. Not `durable` (keepDownloads false): never synced, so that bytes read once and
   * removed need never reach the disk (whoever adopts it syncs it first).
   */
  async commitUnhashed(tmp: string, final: string, fh: FileHandle, size?: number, durable = true): Promise<VerifiedCopy> {
    const copy = await unhashedFetch(() => this.place(tmp, unhashedName(final), fh, size));
    if (durable) this.unhashedSync.add(copy.path, fh);
    else await fh.close().then(() => this.unsynced.add(copy.path), () => this.drop(copy.path, copy.size)); // a lost write: never named
    return copy;
  }

  /**
   * The job's output matched, and its bytes of these parts were read from these copies (commitUnhashed's): each still
   * there with the identity it had gets its checksum name. One adopted by another process, evicted, or removed as wrong
   * is gone, and skipped; nobody else writes to its name (unhashedName). One whose background sync failed was removed.
   */
  async confirmUnhashed(copies: LocalCopy[]): Promise<void> {
    const notSynced = await this.unhashedSync.flush();
    await eachUnchanged(copies.filter((c) => !notSynced.has(c.path)), (c, st) => this.nameOrDrop(c.path, finalOf(c.path), st.size));
  }

  /**
   * The unhashed parts of other runs (make-image's, killed or still running) that this process adopted so far, and
   * named: they were downloads too, so a job that keeps none of its downloads removes them with its own (Network.providers).
   */
  takeAdopted(): VerifiedCopy[] {
    return this.adopted.splice(0);
  }

  /** Removes these copies (this process's downloads, or those it adopted: takeAdopted), each only while unchanged. */
  async removeCopies(copies: LocalCopy[]): Promise<void> {
    await this.eviction.remove(copies, unchangedSize); // in one turn of the size queue, each checked just before its unlink
    for (const c of copies) this.unsynced.delete(c.path);
  }

  /** A reader is done with these files (RemoteParts.passed): they leave the page cache once on the disk (PageRelease). */
  leavePageCache(paths: string[]): void {
    this.pages.leave(paths.filter((p) => !this.unsynced.has(p)));
    this.pages.leaveLater(paths.filter((p) => this.unsynced.has(p)));
  }

  /** Renames `tmp` to `dest` after making room for it (counted once renamed); its identity after the rename. */
  private async place(tmp: string, dest: string, fh: FileHandle, size?: number): Promise<LocalCopy> {
    const bytes = size ?? (await this.fs.fstat(fh)).size;
    // The commit stamp (commit-stamp.ts). The exact atime orders this file after every older one.
    await this.fs.futimes(fh, Date.now() / 1000, commitStamp());
    // Only the rename in the size queue's turn: what fails after it must not leave the file in the cache uncounted.
    await this.eviction.admit(bytes, () => this.dirs.inDir(path.dirname(dest), () => this.fs.rename(tmp, dest)));
    this.stats_.added++;
    // The identity after the rename (which moves the ctime): readers compare with it.
    return { path: dest, offset: 0, ...identityOf(await this.fs.fstat(fh)) };
  }

  /**
   * The end of this process's downloads, after the network was cut: waits (bounded) for the downloads still open to
   * remove their temporary files and release their locks, then refuses new ones (OpenWriters).
   */
  endWrites(ms?: number): Promise<void> {
    return this.writers.end(ms);
  }

  /** Brings the cache under its limit (a mount's end: other processes may have added files meanwhile). */
  async trim(): Promise<void> {
    if (this.stats_.added > 0) await this.eviction.trim();
  }

  /** The end of this process's use of the cache: its last commits let go of the size lock, its lock inode goes (cache-lock.ts). */
  async close(): Promise<void> {
    await this.unhashedSync.flush();
    await Promise.all([this.eviction.close(), this.pages.idle(), this.locks.cleanOnce()]);
    this.locks.removeSpare();
  }

  /** Counts the cache now if it was never counted (for `status`). */
  async refreshStats(): Promise<CacheStats> {
    await this.eviction.refresh();
    return this.stats();
  }

  /** The most a download may bring that has `written` bytes in its file already (a resumed one's count as room). */
  async downloadLimit(written: number): Promise<number> {
    return this.eviction.refresh(written);
  }

  stats(): CacheStats {
    return { ...this.stats_ };
  }
}
