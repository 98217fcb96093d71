import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { decodeBytes, fsPath } from '../format/byte-string.js';
import { ownerTag, ownerTagDead } from '../util/pid.js';

/** A temporary image is named OUTPUT + INFIX + its owner's tag (ownerTag) + SUFFIX. */
const INFIX = '.jigdofs-';
const SUFFIX = '.tmp';

/**
 * Where make-image writes the image until its checksum matched (a rename then gives it its name): beside the output,
 * named after this process and host (util/pid.ts: ownerTag), so that a later run can tell a killed run's file from a
 * live one's.
 */
export function temporaryImagePath(output: string): string {
  return `${output}${INFIX}${ownerTag()}${SUFFIX}`;
}

/**
 * Removes the temporary images of `output` that killed runs left (kill -9, a crash, a power cut: nothing could
 * remove them then), before a new run writes one of its own: each can be as large as the image. Only those of this
 * host's processes that no longer run: a run still writing, here or on another host sharing the folder, keeps its
 * file. Never fails: what cannot be listed or removed stays.
 */
export async function removeDeadTemporaries(output: string): Promise<string[]> {
  const dir = path.dirname(output);
  const prefix = `${path.basename(output)}${INFIX}`;
  const names = await readdir(fsPath(dir), { encoding: 'buffer' }).catch(() => [] as Buffer[]);
  const removed: string[] = [];
  for (const raw of names) {
    const name = decodeBytes(raw); // the output's name may hold non-UTF-8 bytes (byte-string.ts)
    if (!name.startsWith(prefix) || !name.endsWith(SUFFIX)) continue;
    if (!ownerTagDead(name.slice(prefix.length, -SUFFIX.length))) continue; // exactly HOSTTAG-PID: nobody else's file
    const file = path.join(dir, name);
    if (await rm(fsPath(file), { force: true }).then(() => true, () => false)) removed.push(file);
  }
  return removed;
}
