import { lstat, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { lockDirOf, lockIsStale, tmpDirOf } from './cache-lock.js';
import { ownerTagPaused } from '../util/pid.js';
import { keptLengthFile, resumeFileName } from './temp-files.js';

/** A resumable writer's file that no writer holds now: what the size limit counts and may evict (CacheEviction). */
export interface ResumeLeftover {
  file: string;
  /** The blocks it takes (a resumed file is sparse until written through). */
  size: number;
  /** Its last write: a leftover is as recently used as the bytes last added to it. */
  atimeMs: number;
  /** The lock of its checksum, which every writer of it holds (PartCache.begin). */
  lockName: string;
}

/** Takes a checksum's lock if no live process holds it (CacheLocks.tryLock). */
export type ClaimLock = (name: string) => Promise<{ release(): Promise<void> } | undefined>;

/**
 * The resumable files in the cache `dir`'s tmp whose checksum's lock no live process holds: a make-image cut by Ctrl-C,
 * a read that gave up, a run killed. They hold the bytes of a part under way for the next writer of it, and are counted
 * with the cache, so that `--cache-size` and the room for downloads (disk-room.ts) see them: kept apart, they took room
 * nothing could evict, up to a part per connection for each interrupted run, until the start-up cleanup a day later.
 * A file whose lock is held belongs to a download in flight, which reserved its room (DiskRoom) and is counted once
 * committed; so does one of a writer stopped or frozen (its lock looks stale, but it goes on once continued). Regular
 * files only, by their own blocks (a symlink put there would count its target's).
 */
export async function idleResumeFiles(dir: string): Promise<ResumeLeftover[]> {
  const [tmp, locks] = [tmpDirOf(dir), lockDirOf(dir)];
  const out: ResumeLeftover[] = [];
  for (const name of await readdir(tmp).catch(() => [] as string[])) {
    const resume = resumeFileName(name);
    if (!resume || !(await lockIsStale(path.join(locks, `${resume.lockName}.lock`)))) continue;
    // A writer stopped (Ctrl-Z) or frozen past a lock's life has a stale lock and the file open: once continued, it goes on.
    if (ownerTagPaused(resume.owner)) continue;
    const st = await lstat(path.join(tmp, name)).catch(() => undefined);
    if (st?.isFile()) out.push({ file: path.join(tmp, name), size: st.blocks * 512, atimeMs: st.mtimeMs, lockName: resume.lockName });
  }
  return out;
}

/**
 * Removes a leftover (and the length its run recorded beside it) under its checksum's lock, so that no writer takes
 * it over meanwhile; false when a writer holds the lock now (the file is in use: it stays) or it is gone.
 */
export async function removeResumeFile(file: string, lockName: string, claim: ClaimLock): Promise<boolean> {
  const lock = await claim(lockName).catch(() => undefined);
  if (!lock) return false;
  try {
    const removed = await unlink(file).then(() => true, () => false);
    await unlink(keptLengthFile(file)).catch(() => undefined);
    return removed;
  } finally {
    await lock.release();
  }
}
