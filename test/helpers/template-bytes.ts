/**
 * Template bytes built by hand (spec §2): entries of every DESC type, DATA chunks and the DESC part, for tests that
 * need templates no producer writes (synthetic, hostile).
 */
import { deflateSync } from 'node:zlib';

export const u48 = (n: number): Buffer => {
  const b = Buffer.alloc(6);
  b.writeUIntLE(n, 0, 6);
  return b;
};
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
/** An RsyncSum64 of no file: parts whose first block is not looked at. */
export const RS = Buffer.from('0102030405060708', 'hex');
/** DESC entries by type (spec §2.4): length first, then the checksum (and rsync sum or block length). */
export const E = {
  t1: (len: number, sum: Buffer) => Buffer.concat([Buffer.from([1]), u48(len), sum]),
  t2: (len: number) => Buffer.concat([Buffer.from([2]), u48(len)]),
  t3: (len: number, sum: Buffer) => Buffer.concat([Buffer.from([3]), u48(len), sum]),
  t4: (len: number, sum: Buffer) => Buffer.concat([Buffer.from([4]), u48(len), sum]),
  t5: (len: number, sum: Buffer, bl = 1024) => Buffer.concat([Buffer.from([5]), u48(len), sum, u32(bl)]),
  t6: (len: number, sum: Buffer, rs = RS) => Buffer.concat([Buffer.from([6]), u48(len), rs, sum]),
  t7: (len: number, sum: Buffer, rs = RS) => Buffer.concat([Buffer.from([7]), u48(len), rs, sum]),
  t8: (len: number, sum: Buffer, bl = 1024) => Buffer.concat([Buffer.from([8]), u48(len), sum, u32(bl)]),
  t9: (len: number, sum: Buffer, rs = RS) => Buffer.concat([Buffer.from([9]), u48(len), rs, sum]),
};
export const HEADER = Buffer.from('JigsawDownload template 1.2 synthetic/1\r\nmade by test/helpers/template-bytes.ts\r\n\r\n');
export const chunk = (id: string, payload: Buffer, unc: number): Buffer => Buffer.concat([Buffer.from(id), u48(16 + payload.length), u48(unc), payload]);
export const data = (raw: Buffer | string): Buffer => chunk('DATA', deflateSync(Buffer.from(raw)), Buffer.from(raw).length);
/** The DESC part; `lengthFix` makes its two lengths lie. */
export function descPart(entries: Buffer[], lengthFix = 0): Buffer {
  const body = Buffer.concat(entries);
  const total = 16 + body.length + lengthFix;
  return Buffer.concat([Buffer.from('DESC'), u48(total), body, u48(total)]);
}
export const template = (chunks: Buffer[], entries: Buffer[], header = HEADER): Buffer => Buffer.concat([header, ...chunks, descPart(entries)]);
