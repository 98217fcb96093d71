import { constants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { fsPath } from '../format/byte-string.js';
import { describeLocation, type Location } from '../format/location.js';
import { JigdoError, errorMessage } from '../format/errors.js';
import { MAX_JIGDO_TEXT_BYTES } from '../format/jigdo.js';
import { NotRegularFile, withRegularFile } from '../util/open-regular.js';

/** Reads a whole remote .jigdo or [Include]: the command's network gives one (Network.loadRemote). */
export type RemoteLoader = (url: string) => Promise<Buffer>;

/**
 * Reads a whole small resource (.jigdo, [Include]) from where it lives: local files here, remote ones
 * through `remote` (so this module needs no HTTP); without one, a URL is refused.
 */
export function resourceLoader(remote?: RemoteLoader): (loc: Location) => Promise<Buffer> {
  return async (loc) => {
    if (loc.kind === 'file') return readLocalFile(loc.path, MAX_JIGDO_TEXT_BYTES);
    if (!remote) throw new JigdoError(describeLocation(loc), 'cannot fetch URLs here (offline, or no network support)');
    return remote(loc.url);
  };
}

/**
 * A local .jigdo or [Include]: only a regular file, and at most `limit` bytes. `/dev/zero` or a FIFO
 * would otherwise be read without end (or wait forever for a writer).
 */
async function readLocalFile(file: string, limit: number): Promise<Buffer> {
  const read = async (fh: FileHandle): Promise<Buffer> => {
    const st = await fh.stat();
    const tooBig = (): JigdoError => new JigdoError(file, `too big for a .jigdo: more than ${limit >> 20} MiB`);
    if (st.size > limit) throw tooBig();
    return readAtMost(fh, st.size, limit, tooBig);
  };
  return withRegularFile(fsPath(file), constants.O_RDONLY, read).catch((err: unknown) => {
    if (err instanceof JigdoError) throw err;
    if (err instanceof NotRegularFile) throw new JigdoError(file, `cannot be read as a .jigdo: it is ${err.kind}, not a regular file`);
    const code = (err as NodeJS.ErrnoException).code;
    throw new JigdoError(file, code === 'ENOENT' ? 'file not found' : `cannot read: ${errorMessage(err)}`);
  });
}

/** Reads to the end, trusting `size` only as a first guess (/proc files say 0, a file may grow). */
async function readAtMost(fh: FileHandle, size: number, limit: number, tooBig: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const want = Math.min(Math.max(size - total, 64 << 10), limit - total) + 1;
    const buf = Buffer.allocUnsafe(want);
    const { bytesRead } = await fh.read(buf, 0, want, null);
    if (bytesRead === 0) break;
    chunks.push(bytesRead === want ? buf : buf.subarray(0, bytesRead));
    total += bytesRead;
    if (total > limit) throw tooBig();
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}
