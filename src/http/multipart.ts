import { randomBytes } from 'node:crypto';
import { contentRange, rangeLength, type ByteRange } from './range.js';

/** One part of a multipart/byteranges body: its header block, then the range's bytes. */
export interface BodyPart {
  head: string;
  range: ByteRange;
}

/** A `multipart/byteranges` answer (RFC 9110 §14.6), laid out ahead so its Content-Length is exact. */
export interface MultipartPlan {
  contentType: string;
  parts: BodyPart[];
  tail: string;
  length: number;
}

export function multipartPlan(ranges: ByteRange[], size: number, partType: string): MultipartPlan {
  const boundary = `jigdofs-${randomBytes(12).toString('hex')}`;
  const parts = ranges.map((range, i) => ({
    head: `${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${partType}\r\nContent-Range: ${contentRange(range, size)}\r\n\r\n`,
    range,
  }));
  const tail = `\r\n--${boundary}--\r\n`;
  const length = parts.reduce((n, p) => n + Buffer.byteLength(p.head) + rangeLength(p.range), Buffer.byteLength(tail));
  return { contentType: `multipart/byteranges; boundary=${boundary}`, parts, tail, length };
}
