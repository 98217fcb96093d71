import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { makeListed } from '../util/exit-leftovers.js';
import type { MadeDirs } from '../util/make-dirs.js';
import { openRegular } from '../util/open-regular.js';
import { ownerTag, ownerTagDead } from '../util/pid.js';
import { FILE_MODE } from './cache-lock.js';
import type { TempFile } from './cache-writer.js';

/**
 * A new temporary file in the cache's `tmpDir` (its final place's file system), named after this process: removed at its
 * exit unless `unlist` was called (once it was renamed or removed: exit-leftovers.ts); if killed, the next removes it.
 */
export async function openTempFile(tmpDir: string, dirs: MadeDirs): Promise<TempFile> {
  const file = path.join(tmpDir, `${ownerTag()}-${randomBytes(6).toString('hex')}.partial`);
  const [fh, unlist] = await makeListed(file, () => dirs.inDir(tmpDir, () => open(file, 'w+', FILE_MODE)));
  return { file, fh, unlist };
}

/**
 * The file a resumable writer of `name` (a checksum's space, kind and hex: PartCache.begin) writes in the cache's `tmp`,
 * with what an earlier writer of that checksum left: `resume-NAME.OWNER`, named after the process writing it. Used only
 * under that checksum's lock, and on no exit list: a signal or `kill -9` leaves it for the next run. (A template's
 * download goes on where a killed run left it, as jigdo-lite's `wget --continue` does: TemplateDownloads.)
 *
 * The earlier writer's file is claimed by renaming it to this process's name, and only when its owner is this process
 * or one of this host's that no longer runs: a lock taken over from a live process (stopped for longer than a lock
 * stays fresh) must not give two writers one file (the first commit renamed it into the cache, and the other's writes
 * and truncation went into the verified template there). A rename has one winner; the others start a file of their
 * own. Another host's file is left to the start-up cleanup, which judges a `resume-` name by its age alone
 * (TMP_STALE_MS: a day without a byte added).
 */
export async function openResumeFile(tmpDir: string, name: string, dirs: MadeDirs): Promise<TempFile> {
  const prefix = `resume-${name}.`;
  const file = path.join(tmpDir, prefix + ownerTag());
  const names = await readdir(tmpDir).catch(() => [] as string[]);
  let have = names.includes(path.basename(file)); // this process's own, from a writer of it that gave up
  for (const entry of names) {
    const owner = entry.startsWith(prefix) ? entry.slice(prefix.length) : undefined;
    if (owner === undefined || owner === ownerTag() || !ownerTagDead(owner)) continue;
    const dead = path.join(tmpDir, entry);
    // One is claimed (a rename that fails lost to another claimant or a cleanup); the others of dead owners go.
    if (!have) have = await rename(dead, file).then(() => true, () => false);
    else await unlink(dead).catch(() => undefined);
  }
  // (Only a regular file: a FIFO, a device or a symlink put there is refused, not written through.)
  const fh = await dirs.inDir(tmpDir, () => openRegular(file, constants.O_RDWR | constants.O_CREAT, { mode: FILE_MODE, noFollow: true }));
  try {
    // Its time set now: a cleanup that judged an old file stale a moment ago must not remove it under us.
    const now = new Date();
    await fh.utimes(now, now);
  } catch (err) {
    await fh.close();
    throw err;
  }
  return { file, fh, unlist: () => undefined };
}
