import { closeSync, constants, fstatSync, openSync, statSync, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** What a path is, in words, when it is not a regular file. */
export function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** A path that names something other than a regular file (its `code` reads like an errno's). */
export class NotRegularFile extends Error {
  readonly code = 'ENOTREG';
  constructor(
    readonly file: string,
    readonly kind: string,
  ) {
    super(`${file} is ${kind}, not a regular file`);
  }
}

/**
 * Opens `file` only if it is a regular file. O_NONBLOCK: a FIFO put in its place must not hang the open (waiting for a
 * writer or a reader) nor any read after it; it changes nothing for a regular file. With `noFollow`, a symlink there is
 * refused (ELOOP) instead of leading the open out of its folder.
 */
export async function openRegular(file: string | Buffer, flags: number, opts: { mode?: number; noFollow?: boolean } = {}): Promise<FileHandle> {
  const fh = await open(file, flags | constants.O_NONBLOCK | (opts.noFollow ? constants.O_NOFOLLOW : 0), opts.mode ?? 0o600).catch((err: unknown) => {
    throw fifoWithoutReader(file, err);
  });
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new NotRegularFile(file.toString(), kindOf(st));
    return fh;
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/** `use` of `file` opened by openRegular, closed after it whatever it did (a failed close is not `use`'s failure). */
export async function withRegularFile<T>(
  file: string | Buffer,
  flags: number,
  use: (fh: FileHandle) => Promise<T>,
  opts: { mode?: number; noFollow?: boolean } = {},
): Promise<T> {
  const fh = await openRegular(file, flags, opts);
  try {
    return await use(fh);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** openRegular for the few opens made before the event loop matters (a command's configuration, a daemon's log). */
export function openRegularSync(file: string | Buffer, flags: number, mode = 0o600): number {
  let fd: number;
  try {
    fd = openSync(file, flags | constants.O_NONBLOCK, mode);
  } catch (err) {
    throw fifoWithoutReader(file, err);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new NotRegularFile(file.toString(), kindOf(st));
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** A non-blocking open for writing of a FIFO nobody reads fails with ENXIO: say what the path is instead. */
function fifoWithoutReader(file: string | Buffer, err: unknown): unknown {
  if ((err as NodeJS.ErrnoException).code !== 'ENXIO') return err;
  const st = (() => {
    try {
      return statSync(file);
    } catch {
      return undefined;
    }
  })();
  return st && !st.isFile() ? new NotRegularFile(file.toString(), kindOf(st)) : err;
}
