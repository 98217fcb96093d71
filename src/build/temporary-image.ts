import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { decodeBytes, fsPath } from '../format/byte-string.js';
import { ownerDead, ownerTag } from '../util/pid.js';

const SUFFIX = '.tmp';
/** What temporaryImagePath puts between the prefix and the suffix (ownerTag). */
const OWNER = /^[0-9a-f]{8}-\d+$/;

/** The prefix of every temporary image of `output`, before its owner's tag. */
function prefixOf(output: string): string {
  return `${path.basename(output)}.jigdofs-`;
}

/**
 * Where make-image writes the image until its checksum matched (a rename then gives it its name): beside the output,
 * named after this process and host (util/pid.ts: ownerTag), so that a later run can tell a killed run's file from a
 * live one's.
 */
export function temporaryImagePath(output: string): string {
  return `${output}.jigdofs-${ownerTag()}${SUFFIX}`;
}

/**
 * Removes the temporary images of `output` that killed runs left (kill -9, a crash, a power cut: nothing could
 * remove them then), before a new run writes one of its own: each can be as large as the image. Only those of this
 * host's processes that no longer run: a run still writing, here or on another host sharing the folder, keeps its
 * file. Never fails: what cannot be listed or removed stays.
 */
export async function removeDeadTemporaries(output: string): Promise<string[]> {
  const dir = path.dirname(output);
  const prefix = prefixOf(output);
  const names = await readdir(fsPath(dir), { encoding: 'buffer' }).catch(() => [] as Buffer[]);
  const removed: string[] = [];
  for (const raw of names) {
    const name = decodeBytes(raw); // the output's name may hold non-UTF-8 bytes (byte-string.ts)
    if (!name.startsWith(prefix) || !name.endsWith(SUFFIX)) continue;
    const owner = name.slice(prefix.length, -SUFFIX.length);
    if (!OWNER.test(owner) || !ownerDead(`${owner}-`)) continue; // exactly HOSTTAG-PID: nobody else's file
    const file = path.join(dir, name);
    if (await rm(fsPath(file), { force: true }).then(() => true, () => false)) removed.push(file);
  }
  return removed;
}
