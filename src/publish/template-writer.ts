import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { ChecksumKind } from '../format/checksum.js';
import { writeAll } from '../util/write-all.js';
import { BzipChunker, GzipChunker, type RawChunker } from './raw-chunks.js';

/**
 * Writes a .template (spec §2): the three header lines, the raw-data parts holding every image byte no
 * part covers (read again from the image, in order), and the DESC table. Memory: one read piece and one
 * raw-data part at a time.
 */
export interface PartEntry {
  offset: number;
  length: number;
  /** RsyncSum64 of the part's first blockLength bytes (8 bytes). */
  rsync: Buffer;
  sum: Buffer;
}

export interface TemplateJob {
  out: FileHandle;
  image: FileHandle;
  imageSize: number;
  /** In image order, not overlapping. */
  parts: PartEntry[];
  kind: ChecksumKind;
  compression: 'gzip' | 'bzip2';
  blockLength: number;
  imageSum: () => Promise<Buffer>;
  /** Called with the raw bytes written so far. */
  onRaw?: (bytes: number) => void;
}

export interface TemplateResult {
  templateSum: Buffer;
  size: number;
  rawBytes: number;
}

const READ_PIECE = 1024 * 1024;
const URL = 'https://www.einval.com/~steve/software/jigdo/';
export const CREATOR = 'jigdofs/0.1.0';

function le48(n: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntLE(n, 0, 6);
  return b;
}

/** DESC entries: unmatched runs merged, as jigdo-file's Desc::unmatchedData does. */
class DescBuilder {
  private readonly entries: Buffer[] = [];
  private pendingRaw = 0;

  unmatched(length: number): void {
    this.pendingRaw += length;
  }

  private flushRaw(): void {
    if (this.pendingRaw > 0) this.entries.push(Buffer.concat([Buffer.from([2]), le48(this.pendingRaw)]));
    this.pendingRaw = 0;
  }

  part(p: PartEntry, kind: ChecksumKind): void {
    this.flushRaw();
    this.entries.push(Buffer.concat([Buffer.from([kind === 'md5' ? 6 : 9]), le48(p.length), p.rsync, p.sum]));
  }

  finish(imageSize: number, imageSum: Buffer, kind: ChecksumKind, blockLength: number): Buffer {
    this.flushRaw();
    const block = Buffer.alloc(4);
    block.writeUInt32LE(blockLength, 0);
    this.entries.push(Buffer.concat([Buffer.from([kind === 'md5' ? 5 : 8]), le48(imageSize), imageSum, block]));
    const body = Buffer.concat(this.entries);
    const total = body.length + 16;
    return Buffer.concat([Buffer.from('DESC', 'latin1'), le48(total), body, le48(total)]);
  }
}

export async function writeTemplate(job: TemplateJob): Promise<TemplateResult> {
  const hash = createHash(job.kind);
  let size = 0;
  const put = async (b: Buffer): Promise<void> => {
    hash.update(b);
    await writeAll(job.out, b, size);
    size += b.length;
  };
  const major = job.kind === 'md5' ? '1.2' : '2.0';
  await put(Buffer.from(`JigsawDownload template ${major} ${CREATOR}\r\nSee ${URL} for details about jigdo.\r\n\r\n`, 'latin1'));
  const chunker: RawChunker = job.compression === 'gzip' ? new GzipChunker(put) : new BzipChunker(put);
  const desc = new DescBuilder();
  const piece = Buffer.allocUnsafe(READ_PIECE);
  let rawBytes = 0;
  const raw = async (from: number, to: number): Promise<void> => {
    desc.unmatched(to - from);
    for (let at = from; at < to; ) {
      const { bytesRead } = await job.image.read(piece, 0, Math.min(READ_PIECE, to - at), at);
      if (bytesRead === 0) throw new Error('the image got shorter while the template was written');
      await chunker.write(piece.subarray(0, bytesRead));
      at += bytesRead;
      rawBytes += bytesRead;
      job.onRaw?.(rawBytes);
    }
  };
  let at = 0;
  for (const p of job.parts) {
    if (p.offset > at) await raw(at, p.offset);
    desc.part(p, job.kind);
    at = p.offset + p.length;
  }
  if (at < job.imageSize) await raw(at, job.imageSize);
  await chunker.finish();
  await put(desc.finish(job.imageSize, await job.imageSum(), job.kind, job.blockLength));
  return { templateSum: hash.digest(), size, rawBytes };
}
