import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { rename, type FileHandle } from 'node:fs/promises';
import { encodeB64 } from '../format/base64.js';
import { decodeBytes, fsPath } from '../format/byte-string.js';
import { deadTemporaries, removeDeadTemporaries } from '../util/output-temporary.js';
import { openRegular } from '../util/open-regular.js';

/**
 * What make-template runs killed before their end (kill -9, a crash) left beside the outputs, put right before a new
 * run: the temporary .template and .jigdo of this host's runs that no longer run are removed, with one exception.
 * A run renames its .template into place, then its .jigdo: killed between the two, it left its new .template beside
 * the old .jigdo, which names another template (every reader then refused the pair), and its complete .jigdo under
 * the temporary name. That .jigdo, when it names the template now in place by its checksum, is renamed into place:
 * the pair is the killed run's, whole.
 */
export interface KilledRuns {
  /** The killed run's .jigdo, renamed to `jigdo`. */
  finished?: string;
  removed: string[];
}

export async function tidyKilledRuns(jigdo: string, template: string): Promise<KilledRuns> {
  let finished: string | undefined;
  for (const tmp of await deadTemporaries(jigdo)) {
    if (finished === undefined && (await namesTemplate(tmp, template))) {
      if (await rename(fsPath(tmp), fsPath(jigdo)).then(() => true, () => false)) finished = tmp;
    }
  }
  const removed = [...(await removeDeadTemporaries(template)), ...(await removeDeadTemporaries(jigdo))];
  return { removed, ...(finished === undefined ? {} : { finished }) };
}

/** The .jigdo `file` (as make-template writes it: not compressed) gives the checksum of `template` as it is now. */
async function namesTemplate(file: string, template: string): Promise<boolean> {
  const text = await readRegular(file, (fh) => fh.readFile()).then(decodeBytes, () => '');
  const line = /^Template-(MD5|SHA256)Sum=([A-Za-z0-9_-]+)$/m.exec(text);
  if (!line) return false;
  const sum = await fileSum(template, line[1] === 'MD5' ? 'md5' : 'sha256').catch(() => undefined);
  return sum !== undefined && encodeB64(sum) === line[2];
}

function fileSum(file: string, kind: 'md5' | 'sha256'): Promise<Buffer> {
  return readRegular(file, async (fh) => {
    const hash = createHash(kind);
    for await (const chunk of fh.createReadStream({ highWaterMark: 1 << 20, autoClose: false })) hash.update(chunk as Buffer);
    return hash.digest();
  });
}

/** `read` of `file` if it is a regular file (a FIFO put there must not hang the run). */
async function readRegular<T>(file: string, read: (fh: FileHandle) => Promise<T>): Promise<T> {
  const fh = await openRegular(fsPath(file), constants.O_RDONLY);
  try {
    return await read(fh);
  } finally {
    await fh.close();
  }
}
