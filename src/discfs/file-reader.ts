import type { FileHandle } from 'node:fs/promises';
import type { PositionalRead } from './types.js';

/** The positional read the disc reader needs, over an open file (short at the file's end). */
export function fileReader(fh: FileHandle): PositionalRead {
  return async (offset, length) => {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  };
}
