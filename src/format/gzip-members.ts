import * as zlib from 'node:zlib';

/** zlib.crc32 (Node 20.15 and later); without it the members' checksums are not checked (their lengths are). */
const crc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** Header flags (RFC 1952 §2.3.1). */
const FHCRC = 2;
const FEXTRA = 4;
const FNAME = 8;
const FCOMMENT = 16;
const RESERVED = 0xe0;

const truncated = (): Error => new Error('unexpected end of file');

/** Where the compressed data of the gzip member at `at` starts: past its header and the header's optional fields. */
function dataStart(bytes: Buffer, at: number): number {
  if (at + 10 > bytes.length) throw truncated();
  if (bytes[at] !== 0x1f || bytes[at + 1] !== 0x8b) throw new Error('incorrect header check');
  if (bytes[at + 2] !== 8) throw new Error('unknown compression method');
  const flags = bytes[at + 3]!;
  if (flags & RESERVED) throw new Error('unknown header flags set');
  let pos = at + 10;
  if (flags & FEXTRA) {
    if (pos + 2 > bytes.length) throw truncated();
    pos += 2 + bytes.readUInt16LE(pos);
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if (!(flags & flag)) continue;
    const end = bytes.indexOf(0, pos);
    if (end < 0) throw truncated();
    pos = end + 1;
  }
  if (flags & FHCRC) pos += 2;
  if (pos > bytes.length) throw truncated();
  return pos;
}

/**
 * The gzip members of `bytes`, decompressed as one stream, in chunks of at most `chunkSize` (the caller may stop at a
 * limit of its own). What follows the last member and does not start another is ignored, as gzip(1) and jigdo-file
 * do: Node's gunzip refused the whole file for it ("incorrect header check"), and dropped what it had decompressed.
 * Each member's length (and, where zlib.crc32 exists, checksum) is checked against its trailer.
 */
export async function* gunzipMembers(bytes: Buffer, chunkSize: number): AsyncGenerator<Buffer> {
  let at = 0;
  do {
    const start = dataStart(bytes, at);
    // A raw inflate ends at the end of the deflate data, whatever follows; bytesWritten is how much of it that was.
    const z = zlib.createInflateRaw({ chunkSize });
    z.end(bytes.subarray(start));
    let size = 0;
    let crc = 0;
    try {
      for await (const chunk of z as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (crc32) crc = crc32(chunk, crc);
        yield chunk;
      }
    } finally {
      z.destroy();
    }
    const trailer = start + z.bytesWritten;
    if (trailer + 8 > bytes.length) throw truncated();
    if (crc32 && bytes.readUInt32LE(trailer) !== crc >>> 0) throw new Error('incorrect data check');
    if (bytes.readUInt32LE(trailer + 4) !== size % 2 ** 32) throw new Error('incorrect length check');
    at = trailer + 8;
  } while (at + 1 < bytes.length && bytes[at] === 0x1f && bytes[at + 1] === 0x8b);
}
