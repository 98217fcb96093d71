import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { decodeBytes, encodeBytes, fsPath } from '../format/byte-string.js';
import { ownerTag, ownerTagDead } from './pid.js';

/**
 * A file written under a temporary name beside its output until it is complete (a rename then gives it its name):
 * make-image's image, make-template's .template and .jigdo. Named OUTPUT + INFIX + its owner's tag (ownerTag) + SUFFIX
 * (see temporaryPrefix for long names).
 */
const INFIX = '.jigdofs-';
const SUFFIX = '.tmp';

/**
 * Where `output` is written until it is complete: beside it, named after this process and host (util/pid.ts:
 * ownerTag), so that a later run can tell a killed run's file from a live one's. (`tag`: another process's.)
 */
export function temporaryPath(output: string, tag = ownerTag()): string {
  return path.join(path.dirname(output), `${temporaryPrefix(output)}${tag}${SUFFIX}`);
}

/** The longest name a folder entry may have (NAME_MAX of Linux file systems), in bytes. */
const NAME_MAX = 255;
/** Room for the owner tag of any pid (pid_max is at most 2^22). */
const LONGEST_TAG = ownerTag(2 ** 22);

/**
 * The start of the names of `output`'s temporary files: its own name and INFIX, or, for a name too long to take the
 * rest within NAME_MAX (a legal output name of 230 bytes and more), a hidden name made of a hash of it.
 */
function temporaryPrefix(output: string): string {
  const base = path.basename(output);
  const prefix = `${base}${INFIX}`;
  if (encodeBytes(`${prefix}${LONGEST_TAG}${SUFFIX}`).length <= NAME_MAX) return prefix;
  return `.${createHash('sha256').update(encodeBytes(base)).digest('hex').slice(0, 16)}${INFIX}`;
}

/**
 * Removes the temporary files of `output` that killed runs left (kill -9, a crash, a power cut: nothing could
 * remove them then), before a new run writes one of its own: an image's can be as large as the image. Only those of this
 * host's processes that no longer run: a run still writing, here or on another host sharing the folder, keeps its
 * file. Never fails: what cannot be listed or removed stays.
 */
export async function removeDeadTemporaries(output: string): Promise<string[]> {
  const removed: string[] = [];
  for (const { file } of await deadTemporaries(output)) {
    if (await rm(fsPath(file), { force: true }).then(() => true, () => false)) removed.push(file);
  }
  return removed;
}

/** The temporary files of `output` left by this host's processes that no longer run (see removeDeadTemporaries), with their owners' tags. */
export async function deadTemporaries(output: string): Promise<Array<{ file: string; tag: string }>> {
  const dir = path.dirname(output);
  const prefix = temporaryPrefix(output);
  const names = await readdir(fsPath(dir), { encoding: 'buffer' }).catch(() => [] as Buffer[]);
  const dead: Array<{ file: string; tag: string }> = [];
  for (const raw of names) {
    const name = decodeBytes(raw); // the output's name may hold non-UTF-8 bytes (byte-string.ts)
    if (!name.startsWith(prefix) || !name.endsWith(SUFFIX)) continue;
    const tag = name.slice(prefix.length, -SUFFIX.length);
    if (ownerTagDead(tag)) dead.push({ file: path.join(dir, name), tag }); // exactly HOSTTAG-PID: nobody else's file
  }
  return dead;
}
