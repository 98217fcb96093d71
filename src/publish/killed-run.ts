import { constants } from 'node:fs';
import { lstat, rename, type FileHandle } from 'node:fs/promises';
import { encodeB64 } from '../format/base64.js';
import { decodeBytes, fsPath } from '../format/byte-string.js';
import { deadTemporaries, removeDeadTemporaries, temporaryPath } from '../util/output-temporary.js';
import { hashOpenFile } from '../util/hash-open-file.js';
import { withRegularFile } from '../util/open-regular.js';

/**
 * What make-template runs killed before their end (kill -9, a crash) left beside the outputs, put right before a new
 * run: the temporary .template and .jigdo of this host's runs that no longer run are removed, with one exception.
 * A run writes both temporaries whole (synced), then renames its .template into place, then its .jigdo: killed between
 * the two renames, it left its new .template beside the old .jigdo, which names another template (every reader then
 * refused the pair), and its complete .jigdo under the temporary name. That .jigdo is renamed into place when its run's
 * template temporary is gone (the run got past that rename; so the .jigdo was whole before it), it names the template
 * now in place by its checksum, and it is a regular file of ours (not a link, not another user's in a shared folder).
 */
export interface KilledRuns {
  /** The killed run's .jigdo, renamed to `jigdo`. */
  finished?: string;
  removed: string[];
}

export async function tidyKilledRuns(jigdo: string, template: string): Promise<KilledRuns> {
  let finished: string | undefined;
  for (const { file, tag } of await deadTemporaries(jigdo)) {
    if (finished !== undefined || (await exists(temporaryPath(template, tag))) || !(await namesTemplate(file, template))) continue;
    if (await rename(fsPath(file), fsPath(jigdo)).then(() => true, () => false)) finished = file;
  }
  const removed = [...(await removeDeadTemporaries(template)), ...(await removeDeadTemporaries(jigdo))];
  return { removed, ...(finished === undefined ? {} : { finished }) };
}

const exists = (file: string): Promise<boolean> => lstat(fsPath(file)).then(() => true, () => false);

/**
 * The .jigdo `file` (as make-template writes it: not compressed) gives the checksum of `template` as it is now in one
 * of its `[Image]` sections (with --merge, the merged file's come first).
 */
async function namesTemplate(file: string, template: string): Promise<boolean> {
  const text = await readRegular(file, (fh) => fh.readFile()).then(decodeBytes, () => '');
  const sums = [...text.matchAll(/^Template-(MD5|SHA256)Sum=([A-Za-z0-9_-]+)$/gm)];
  for (const kind of ['md5', 'sha256'] as const) {
    const named = sums.filter((m) => m[1] === kind.toUpperCase()).map((m) => m[2]);
    if (named.length === 0) continue;
    const sum = await readRegular(template, (fh) => hashOpenFile(fh, kind), false).catch(() => undefined);
    if (sum !== undefined && named.includes(encodeB64(sum))) return true;
  }
  return false;
}

/**
 * `read` of `file` if it is a regular file (a FIFO put there must not hang the run); a temporary (`ours`) only if it is
 * no link and belongs to this user.
 */
function readRegular<T>(file: string, read: (fh: FileHandle) => Promise<T>, ours = true): Promise<T> {
  const readOurs = async (fh: FileHandle): Promise<T> => {
    if (ours && (await fh.stat()).uid !== process.getuid?.()) throw new Error('not ours');
    return read(fh);
  };
  return withRegularFile(fsPath(file), constants.O_RDONLY, readOurs, { noFollow: ours });
}
