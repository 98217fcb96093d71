import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { makeListed } from '../util/exit-leftovers.js';
import type { MadeDirs } from '../util/make-dirs.js';
import { openRegular } from '../util/open-regular.js';
import { ownerTag } from '../util/pid.js';
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
 * opened with what an earlier writer left in it; only ever used under that checksum's lock. Its name carries no owner,
 * so the start-up cleanup (CacheLocks.cleanOnce) judges it by its age alone (TMP_STALE_MS: a day without a byte added),
 * and it is on no exit list: a signal leaves it for the next run. (A template's download goes on where a killed run
 * left it, as jigdo-lite's `wget --continue` does: TemplateDownloads.)
 */
export async function openResumeFile(tmpDir: string, name: string, dirs: MadeDirs): Promise<TempFile> {
  const file = path.join(tmpDir, `resume-${name}`);
  // (Only a regular file: a FIFO, a device or a symlink put there is refused, not written through.)
  const fh = await dirs.inDir(tmpDir, () => openRegular(file, constants.O_RDWR | constants.O_CREAT, { mode: FILE_MODE, noFollow: true }));
  try {
    // Its time set now: another process's cleanup that judged an old file stale a moment ago must not remove it under us.
    const now = new Date();
    await fh.utimes(now, now);
  } catch (err) {
    await fh.close();
    throw err;
  }
  return { file, fh, unlist: () => undefined };
}
