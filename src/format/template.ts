import { encodeB64 } from './base64.js';
import type { ByteSource } from './bytesource.js';
import type { ChecksumKind } from './checksum.js';
import { JigdoError } from './errors.js';

/**
 * The .template format (spec §2): header, raw-data parts (DATA = zlib, BZIP = bzip2) and the DESC table.
 * Parsing reads only the header, DESC and the 16-byte part headers: never the compressed payloads.
 */

export type Compression = 'zlib' | 'bzip2';

/** One raw-data part of the template ("chunk" here, to keep "part" for the image's files). */
export interface RawChunk {
  index: number;
  compression: Compression;
  /** File offset of the compressed payload (after the 16-byte header). */
  payloadOffset: number;
  payloadLength: number;
  uncompressedLength: number;
  /** Offset of this chunk's first byte in the raw stream (the concatenation of all chunks). */
  rawStart: number;
}

export type DescEntry =
  | { kind: 'raw'; type: 2; offset: number; length: number; rawOffset: number }
  | {
      kind: 'part';
      type: 3 | 4 | 6 | 7 | 9 | 10;
      offset: number;
      length: number;
      checksumKind: ChecksumKind;
      sum: Buffer;
      /** Canonical jigdo-base64 of `sum`: the part's identity and its [Parts] key. */
      key: string;
      rsync?: Buffer;
      /** Types 4/7/10: already written into a jigdo-lite `.tmp` file. */
      written: boolean;
    }
  | { kind: 'info'; type: 1 | 5 | 8; imageSize: number; checksumKind: ChecksumKind; sum: Buffer; blockLength: number };

export interface Desc {
  /** File offset of the DESC part. */
  start: number;
  length: number;
  entries: DescEntry[];
  imageSize: number;
  imageChecksumKind: ChecksumKind;
  imageSum: Buffer;
  blockLength: number;
  /** Sum of the type-2 lengths. */
  rawLength: number;
}

export interface TemplateInfo {
  name: string;
  fileSize: number;
  /** Line 1 of the header, e.g. `JigsawDownload template 1.2 jigdo-file/0.8.0`. */
  headerLine: string;
  version: string;
  creator: string;
  headerLength: number;
  chunks: RawChunk[];
  desc: Desc;
}

const HEADER_PREFIX = 'JigsawDownload template ';
const MAX_HEADER = 64 * 1024;
const MIN_DESC = 45;
const MAX_DESC = 256 * 1024 * 1024;
/**
 * DESC entries held at most. Each costs a few hundred bytes of heap here and in the image map, so the 256 MiB
 * jigdo-file allows (8 million 31-byte part entries, 38 million 7-byte ones) ran the process out of memory, an abort
 * instead of an error. A real image has one or two entries per part: a 25 GB Blu-ray image lists tens of thousands.
 */
export const MAX_DESC_ENTRIES = 1 << 19;
/**
 * DATA/BZIP parts held at most. jigdo-file cuts its raw data every 512–900 KB (the 4.5 GB big-4g sample has 5,001
 * parts), so this is over 128 GiB of data no part matched; 16-byte empty parts filling a 16 MB template were a
 * million objects and 42 s of reads.
 */
export const MAX_TEMPLATE_CHUNKS = 1 << 18;
/** The part headers are read this much at a time: empty or tiny parts sit side by side. */
const CHUNK_HEADER_WINDOW = 4096;
const ENTRY_SIZE: Record<number, number> = { 1: 23, 2: 7, 3: 23, 4: 23, 5: 27, 6: 31, 7: 31, 8: 43, 9: 47, 10: 47 };

/** 6-byte little-endian unsigned (lengths up to 2^48: exact in a JS number). */
export function readUInt48(buf: Buffer, at: number): number {
  return buf.readUIntLE(at, 6);
}

/** Reads the three header lines; returns their length. */
async function parseHeader(src: ByteSource): Promise<{ line: string; length: number }> {
  const head = await src.read(0, Math.min(src.size, MAX_HEADER));
  if (!head.subarray(0, HEADER_PREFIX.length).equals(Buffer.from(HEADER_PREFIX))) {
    throw new JigdoError(src.name, 'not a jigdo template (no "JigsawDownload template" header)', 0);
  }
  let end = -1;
  for (let i = 0, found = 0; i < head.length; i++) {
    if (head[i] === 0x0a && ++found === 3) {
      end = i + 1;
      break;
    }
  }
  if (end < 0) throw new JigdoError(src.name, 'template header is truncated (fewer than 3 lines)', 0);
  const line = head.subarray(0, head.indexOf(0x0a)).toString('latin1').replace(/\r$/, '');
  return { line, length: end };
}

/** Parses one DESC entry at `at`; returns it and its size. Image offsets are filled in by the caller. */
function parseEntry(buf: Buffer, at: number, name: string, fileOffset: number): { entry: DescEntry; size: number } {
  const type = buf[at]!;
  const size = ENTRY_SIZE[type];
  if (size === undefined) throw new JigdoError(name, `invalid DESC entry type ${type}`, fileOffset + at);
  if (at + size > buf.length) throw new JigdoError(name, `DESC entry of type ${type} runs past the end of DESC`, fileOffset + at);
  const len = readUInt48(buf, at + 1);
  switch (type) {
    case 2:
      return { entry: { kind: 'raw', type, offset: 0, length: len, rawOffset: 0 }, size };
    case 1:
    case 5:
    case 8: {
      const kind: ChecksumKind = type === 8 ? 'sha256' : 'md5';
      const sumLen = type === 8 ? 32 : 16;
      const sum = Buffer.from(buf.subarray(at + 7, at + 7 + sumLen));
      const blockLength = type === 1 ? 0 : buf.readUInt32LE(at + 7 + sumLen);
      return { entry: { kind: 'info', type, imageSize: len, checksumKind: kind, sum, blockLength }, size };
    }
    default: {
      const t = type as 3 | 4 | 6 | 7 | 9 | 10;
      const kind: ChecksumKind = t === 9 || t === 10 ? 'sha256' : 'md5';
      const hasRsync = t !== 3 && t !== 4;
      const sumAt = at + 7 + (hasRsync ? 8 : 0);
      const sum = Buffer.from(buf.subarray(sumAt, sumAt + (kind === 'sha256' ? 32 : 16)));
      const entry: DescEntry = {
        kind: 'part',
        type: t,
        offset: 0,
        length: len,
        checksumKind: kind,
        sum,
        key: encodeB64(sum),
        written: t === 4 || t === 7 || t === 10,
        ...(hasRsync ? { rsync: Buffer.from(buf.subarray(at + 7, at + 15)) } : {}),
      };
      return { entry, size };
    }
  }
}

/**
 * Reads the DESC part from the end of a template or a jigdo-lite `.tmp` file and checks the invariants
 * of spec §2.4, more strictly than jigdo-file (exact fit, one checksum kind).
 */
export async function parseDesc(src: ByteSource): Promise<Desc> {
  const { name, size } = src;
  if (size < MIN_DESC) throw new JigdoError(name, `file is too short (${size} bytes) to hold a DESC table`);
  const tail = readUInt48(await src.read(size - 6, 6), 0);
  if (tail < MIN_DESC || tail > MAX_DESC || tail > size) {
    throw new JigdoError(name, `invalid DESC length ${tail} in the last 6 bytes (truncated or not a template?)`, size - 6);
  }
  const start = size - tail;
  const buf = await src.read(start, tail);
  if (buf.toString('latin1', 0, 4) !== 'DESC') throw new JigdoError(name, 'no DESC table where its length says it starts', start);
  if (readUInt48(buf, 4) !== tail) throw new JigdoError(name, 'the two DESC length fields differ', start + 4);

  const entries: DescEntry[] = [];
  const body = buf.subarray(0, tail - 6);
  let at = 10;
  let imageOffset = 0;
  let rawOffset = 0;
  while (at < body.length) {
    if (entries.length === MAX_DESC_ENTRIES) {
      throw new JigdoError(name, `the DESC table lists more than ${MAX_DESC_ENTRIES} entries (no real image has that many parts)`, start + at);
    }
    const { entry, size: entrySize } = parseEntry(body, at, name, start);
    if (entry.kind === 'raw') {
      entry.offset = imageOffset;
      entry.rawOffset = rawOffset;
      rawOffset += entry.length;
      imageOffset += entry.length;
    } else if (entry.kind === 'part') {
      entry.offset = imageOffset;
      imageOffset += entry.length;
    }
    entries.push(entry);
    at += entrySize;
  }
  const last = entries[entries.length - 1];
  if (!last || last.kind !== 'info') throw new JigdoError(name, 'the last DESC entry is not image information', start);
  if (last.imageSize !== imageOffset) {
    throw new JigdoError(name, `DESC entries cover ${imageOffset} bytes but the image size is ${last.imageSize}`, start);
  }
  for (const e of entries) {
    if (e.kind === 'part' && e.checksumKind !== last.checksumKind) {
      throw new JigdoError(name, `DESC mixes ${e.checksumKind} parts with a ${last.checksumKind} image checksum`, start);
    }
  }
  return {
    start,
    length: tail,
    entries,
    imageSize: last.imageSize,
    imageChecksumKind: last.checksumKind,
    imageSum: last.sum,
    blockLength: last.blockLength,
    rawLength: rawOffset,
  };
}

/**
 * The most compressed bytes `n` bytes of data can take, with room to spare: zlib's conservative deflateBound is
 * n + n/8 + n/64 + 11, bzip2's worst case n × 1.01 + 600.
 */
function compressedBound(n: number): number {
  return n + Math.ceil(n / 8) + Math.ceil(n / 64) + 1024;
}

/** Walks the DATA/BZIP part headers between the header and DESC; they must fill that space exactly. */
async function parseChunks(src: ByteSource, from: number, to: number): Promise<RawChunk[]> {
  const chunks: RawChunk[] = [];
  let at = from;
  let rawStart = 0;
  let window: Buffer = Buffer.alloc(0);
  let windowAt = 0;
  while (at < to) {
    if (to - at < 16) throw new JigdoError(src.name, `${to - at} stray bytes before DESC`, at);
    if (chunks.length === MAX_TEMPLATE_CHUNKS) {
      throw new JigdoError(src.name, `more than ${MAX_TEMPLATE_CHUNKS} DATA/BZIP parts before DESC (no real template has that many)`, at);
    }
    if (at + 16 > windowAt + window.length) {
      windowAt = at;
      window = await src.read(at, Math.min(CHUNK_HEADER_WINDOW, to - at));
    }
    const head = window.subarray(at - windowAt, at - windowAt + 16);
    const id = head.toString('latin1', 0, 4);
    if (id !== 'DATA' && id !== 'BZIP') throw new JigdoError(src.name, `expected a DATA or BZIP part, found ${JSON.stringify(id)}`, at);
    const partLength = readUInt48(head, 4);
    const uncompressedLength = readUInt48(head, 10);
    if (partLength < 16 || at + partLength > to) {
      throw new JigdoError(src.name, `${id} part length ${partLength} does not fit before DESC`, at + 4);
    }
    if (uncompressedLength > 0 && partLength === 16) throw new JigdoError(src.name, `${id} part has no payload`, at);
    if (partLength - 16 > compressedBound(uncompressedLength)) {
      // A chunk is read whole before it is inflated: a payload padded far past its data cost memory out of proportion.
      throw new JigdoError(src.name, `${id} part holds ${partLength - 16} compressed bytes for ${uncompressedLength} bytes of data: more than any compressor writes`, at + 4);
    }
    chunks.push({
      index: chunks.length,
      compression: id === 'DATA' ? 'zlib' : 'bzip2',
      payloadOffset: at + 16,
      payloadLength: partLength - 16,
      uncompressedLength,
      rawStart,
    });
    rawStart += uncompressedLength;
    at += partLength;
  }
  return chunks;
}

export async function parseTemplate(src: ByteSource): Promise<TemplateInfo> {
  const header = await parseHeader(src);
  const desc = await parseDesc(src);
  if (desc.start < header.length) throw new JigdoError(src.name, 'DESC overlaps the template header', desc.start);
  const chunks = await parseChunks(src, header.length, desc.start);
  const rawTotal = chunks.reduce((sum, c) => sum + c.uncompressedLength, 0);
  if (rawTotal !== desc.rawLength) {
    throw new JigdoError(src.name, `raw-data parts hold ${rawTotal} bytes but DESC needs ${desc.rawLength}`);
  }
  const words = header.line.slice(HEADER_PREFIX.length).trim().split(/\s+/);
  return {
    name: src.name,
    fileSize: src.size,
    headerLine: header.line,
    version: words[0] ?? '',
    creator: words.slice(1).join(' '),
    headerLength: header.length,
    chunks,
    desc,
  };
}
