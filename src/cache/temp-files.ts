import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, lstat, open, readdir, readFile, rename, truncate, unlink, utimes } from 'node:fs/promises';
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
 * An earlier writer's file is taken over by a rename only when its owner is one of this host's processes that no longer
 * runs (the longest; the others of those go). Else the longest other is copied: a lock taken over from a live process (stopped for
 * longer than a lock stays fresh) must not give two writers one file (the first commit renamed it into the cache, and
 * the other's writes and truncation went into the verified template there), and the owner of a file from before a
 * reboot, or from another container sharing the cache, cannot be judged at all (its tag names another boot or pid
 * namespace). Those are left to the start-up cleanup, which judges a `resume-` name by its age alone (TMP_STALE_MS: a
 * day without a byte added). The checksum judges whatever the bytes taken make with the rest.
 */
export async function openResumeFile(tmpDir: string, name: string, dirs: MadeDirs, tookUp?: () => void): Promise<TempFile> {
  const prefix = `resume-${name}.`;
  const file = path.join(tmpDir, prefix + ownerTag()); // (resumeFileName reads it back)
  const names = (await readdir(tmpDir).catch(() => [] as string[])).filter((n) => n.startsWith(prefix) && n !== path.basename(file));
  const ofDeadOwner = (file: string): boolean => ownerTagDead(path.basename(file).slice(prefix.length));
  const dataFiles = names.filter((n) => !n.endsWith(KEPT_SUFFIX)).map((n) => path.join(tmpDir, n));
  // A dead run's file is cut to the length it recorded as it ended (keptLengthFile) before its size is judged.
  for (const f of dataFiles) if (ofDeadOwner(f)) await cutToKept(f);
  const others = await longestFirst(dataFiles);
  // This process's own, from a writer of it that gave up: kept unless a dead run's is longer. (A record of its name is a
  // dead run's of the same tag: a pid used again.)
  await cutToKept(file);
  const own = await lstat(file).then((st) => st.size, () => undefined);
  let have = false;
  for (const dead of others.filter((f) => ofDeadOwner(f.file))) {
    if (!have && (own === undefined || dead.size > own)) {
      // Its time set first: a cleanup judging it by its age a moment ago must not remove it once it is ours.
      await utimes(dead.file, new Date(), new Date()).catch(() => undefined);
      have = await rename(dead.file, file).then(() => true, () => false); // (false: lost to a cleanup)
    } else await unlink(dead.file).catch(() => undefined);
  }
  have ||= own !== undefined;
  const copied = others.find((f) => !ofDeadOwner(f.file));
  // A reflink where the file system has them; never a link to it (its writer may still write it), nor through a
  // symlink put at our name (EXCL: nothing is there when we have no file of our own).
  if (!have && copied) {
    await copyFile(copied.file, file, constants.COPYFILE_FICLONE | constants.COPYFILE_EXCL).then(
      () => cutToKept(file, keptLengthFile(copied.file), false), // (a run ending now: its length, not what came after it)
      () => unlink(file).catch(() => undefined),
    );
  }
  // (Only a regular file: a FIFO, a device or a symlink put there is refused, not written through.)
  const fh = await dirs.inDir(tmpDir, () => openRegular(file, constants.O_RDWR | constants.O_CREAT, { mode: FILE_MODE, noFollow: true }));
  try {
    // Its time set now: a cleanup that judged an old file stale a moment ago must not remove it under us.
    const now = new Date();
    await fh.utimes(now, now);
    await fh.chmod(FILE_MODE); // (a copy has its source's mode)
  } catch (err) {
    await fh.close();
    throw err;
  }
  // A leftover taken, or removed for a longer one: the size limit's count of them changed (CacheEviction.leftoversChanged).
  if (own !== undefined || dataFiles.length > 0) tookUp?.();
  return { file, fh, unlist: () => undefined };
}

/** `resume-NAME.OWNER`, as openResumeFile names a file: NAME is its checksum's lock name, OWNER its writer's tag. */
const RESUME_FILE = /^resume-(.+)\.([0-9a-f]{8}-\d+)$/;

/** The checksum's lock name and the writer's tag in a resumable file's name; undefined for any other name (a `.kept`). */
export function resumeFileName(fileName: string): { lockName: string; owner: string } | undefined {
  const m = RESUME_FILE.exec(fileName);
  return m ? { lockName: m[1]!, owner: m[2]! } : undefined;
}

/** Beside a resumable file: the length of it known written when its process ended (CacheWriter.keepWritten). */
const KEPT_SUFFIX = '.kept';
export const keptLengthFile = (file: string): string => file + KEPT_SUFFIX;

/**
 * Cuts `file` to the length recorded in `kept` (by default its own record), if there is one, and removes the record
 * (unless `drop` is false: another's). The process that wrote the record cut the file too, but its fetch threads may have
 * written past that before it was gone.
 */
async function cutToKept(file: string, kept = keptLengthFile(file), drop = true): Promise<void> {
  const text = await readFile(kept, 'utf8').catch(() => undefined);
  if (text === undefined) return;
  const length = /^\d+$/.test(text) ? Number(text) : 0; // (an unreadable record keeps nothing)
  await truncate(file, length).catch(() => undefined);
  if (drop) await unlink(kept).catch(() => undefined);
}

/** The regular files among `files` with their sizes, the longest first. */
async function longestFirst(files: string[]): Promise<Array<{ file: string; size: number }>> {
  const sized = await Promise.all(files.map(async (file) => ({ file, st: await lstat(file).catch(() => undefined) })));
  return sized.flatMap(({ file, st }) => (st?.isFile() ? [{ file, size: st.size }] : [])).sort((a, b) => b.size - a.size);
}
