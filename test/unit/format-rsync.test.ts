// RsyncSum64 (spec §3): the §3.4 test vectors, the Appendix A table checksum, and the rsync fields the
// real producers stored in the sample templates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { rsyncSum64 } from '../../src/format/rsync.js';
import { encodeB64 } from '../../src/format/base64.js';
import { FileByteSource } from '../../src/format/bytesource.js';
import { parseTemplate } from '../../src/format/template.js';
import { SAMPLES, SAMPLE_PARTS } from '../helpers/cli.js';

const parts = (name: string): Buffer => readFileSync(path.join(SAMPLE_PARTS, name));

test('§3.4 test vectors', () => {
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const small = parts('small.txt');
  assert.equal(small.length, 500);
  const vectors: Array<[string, Buffer, string | undefined, string]> = [
    ['empty', Buffer.alloc(0), '0000000000000000', 'AAAAAAAAAAA'],
    ['00', Buffer.from([0]), '0f5cd6510f5cd651', 'D1zWUQ9c1lE'],
    ['"a"', Buffer.from('a'), 'e4d00f43e4d00f43', '5NAPQ-TQD0M'],
    ['"abc"', Buffer.from('abc'), 'da29b56447b05c1e', '2im1ZEewXB4'],
    ['bytes 0x00..0xff', all, 'c3ad7f264bb0bc15', 'w61_JkuwvBU'],
    ['a.bin[0:1024]', parts('a.bin').subarray(0, 1024), '2653d0d22bf21819', 'JlPQ0ivyGBk'],
    ['small.txt raw', small, undefined, '8Fk1Z8NQDdE'],
    ['small.txt + 524 zeros', Buffer.concat([small, Buffer.alloc(524)]), 'a4c8f9e995ebaca8', 'pMj56ZXrrKg'],
  ];
  for (const [what, input, hexBytes, b64] of vectors) {
    const sum = rsyncSum64(input);
    assert.equal(sum.length, 8, what);
    if (hexBytes) assert.equal(sum.toString('hex'), hexBytes, what);
    assert.equal(encodeB64(sum), b64, what);
  }
});

test('§3.4 worked example for "abc": lo/hi after each byte', () => {
  const steps: Array<[string, number, number]> = [
    ['a', 0x430fd0e4, 0x430fd0e4],
    ['ab', 0x7697b589, 0xb9a7866d],
    ['abc', 0x64b529da, 0x1e5cb047],
  ];
  for (const [input, lo, hi] of steps) {
    const sum = rsyncSum64(Buffer.from(input));
    assert.equal(sum.readUInt32LE(0), lo, `lo after ${input}`);
    assert.equal(sum.readUInt32LE(4), hi, `hi after ${input}`);
  }
});

test('the table matches Appendix A (SHA-256 of T[0..255] as LE words)', () => {
  // For a single byte x, lo = hi = T[x]: this recovers the whole table from the public function.
  const words = Buffer.alloc(256 * 4);
  for (let x = 0; x < 256; x++) {
    const sum = rsyncSum64(Buffer.from([x]));
    assert.equal(sum.readUInt32LE(0), sum.readUInt32LE(4));
    words.writeUInt32LE(sum.readUInt32LE(0), x * 4);
  }
  assert.equal(createHash('sha256').update(words).digest('hex'), '656e5df0b5cadcd2827e5d2a92bb54efca36ea45a8230e84f9e21dbde88abd39');
  assert.equal(words.readUInt32LE(0), 0x51d65c0f);
  assert.equal(words.readUInt32LE(255 * 4), 0x535f99e2);
});

test('sums wrap modulo 2^32 on long inputs (1 MiB of 0xff)', () => {
  // Reference with BigInt arithmetic: lo_n = n*T, hi_n = T*n(n+1)/2 (mod 2^32) for a constant byte.
  const t = BigInt(rsyncSum64(Buffer.from([0xff])).readUInt32LE(0));
  const n = 1n << 20n;
  const sum = rsyncSum64(Buffer.alloc(1 << 20, 0xff));
  const mod = 1n << 32n;
  assert.equal(BigInt(sum.readUInt32LE(0)), (t * n) % mod);
  assert.equal(BigInt(sum.readUInt32LE(4)), ((t * n * (n + 1n)) / 2n) % mod);
});

test('the rsync of every part file matches the field the producer stored in each sample template', async () => {
  // jigdo-file: the first blockLen bytes. libjte: the file zero-padded to 1024 (spec §3.3), 0 when empty.
  const files = ['a.bin', 'b.bin', 'sub/c.bin', 'small.txt', 'empty'].map((name) => {
    const data = parts(name);
    return { name, data, md5: createHash('md5').update(data).digest(), sha256: createHash('sha256').update(data).digest() };
  });
  let checked = 0;
  for (const t of ['jf-md5-gzip', 'jf-sha256-bzip2', 'jte-md5-gzip', 'jte-sha256-bzip2', 'jte-multipart']) {
    const src = await FileByteSource.open(path.join(SAMPLES, `${t}.template`));
    try {
      const info = await parseTemplate(src);
      const blockLen = info.desc.blockLength;
      assert.equal(blockLen, 1024);
      for (const e of info.desc.entries) {
        if (e.kind !== 'part') continue;
        const file = files.find((f) => (e.checksumKind === 'md5' ? f.md5 : f.sha256).equals(e.sum));
        assert.ok(file, `${t}: no part file has checksum ${e.key}`);
        const expected: Buffer =
          file.data.length === 0
            ? Buffer.alloc(8)
            : file.data.length >= blockLen
              ? rsyncSum64(file.data.subarray(0, blockLen))
              : rsyncSum64(Buffer.concat([file.data, Buffer.alloc(blockLen - file.data.length)]));
        assert.deepEqual(e.rsync, expected, `${t}: rsync of ${file.name}`);
        checked++;
      }
    } finally {
      await src.close();
    }
  }
  assert.ok(checked >= 20, `only ${checked} entries checked`);
});
