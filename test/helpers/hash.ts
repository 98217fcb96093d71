/** The tests' one set of checksum helpers (hex MD5 of bytes or of a file, streamed). */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';

export const md5hex = (data: Uint8Array | string): string => createHash('md5').update(data).digest('hex');

/** The raw MD5 digest (as jigdo keys are made from). */
export const md5sum = (data: Uint8Array | string): Buffer => createHash('md5').update(data).digest();

/** A whole file's digest of `kind`, as PartCache's `hashFile` gives it (files of a few MiB). */
export const hashWholeFile = async (file: string, kind: 'md5' | 'sha256'): Promise<Buffer> => createHash(kind).update(await readFile(file)).digest();

/** Hex MD5 of a file, streamed: images are GBs in some tests. */
export async function fileMd5(file: string): Promise<string> {
  const hash = createHash('md5');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
