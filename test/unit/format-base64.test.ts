// jigdo-Base64 (spec §4.5): base64url alphabet, never padded, canonical encoding only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { decodeB64, encodeB64 } from '../../src/format/base64.js';
import { checksumKey, kindOfKey } from '../../src/format/checksum.js';
import { prng, randInt } from '../helpers/cli.js';

/** Reference encoder written from the spec's wording (bit packing by hand), independent of Buffer. */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
function referenceEncode(bytes: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += ALPHABET[(acc >> bits) & 63];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(acc << (6 - bits)) & 63];
  return out;
}

const hex = (h: string): Buffer => Buffer.from(h, 'hex');

test('spec §4.5 / §3.2 / §2.7 examples encode exactly', () => {
  // MD5 of the empty file.
  assert.equal(encodeB64(hex('d41d8cd98f00b204e9800998ecf8427e')), '1B2M2Y8AsgTpgAmY7PhCfg');
  // The rsync of parts/a.bin: lo=0xd2d05326 hi=0x1918f22b serialized LE, LE.
  assert.equal(encodeB64(hex('2653d0d22bf21819')), 'JlPQ0ivyGBk');
  // image.iso's MD5 and SHA-256 as `jigdo-file ls` prints them (golden-ls-*.txt).
  assert.equal(encodeB64(hex('784af77770a40eb11678baaea6484bff')), 'eEr3d3CkDrEWeLqupkhL_w');
  assert.equal(encodeB64(hex('e82307085e0703e4b6cf0fb384ccef0cde0536766136396f0615b4a338bd3240')), '6CMHCF4HA-S2zw-zhMzvDN4FNnZhNjlvBhW0ozi9MkA');
  // The §3.4 rsync test vectors' b64 column.
  assert.equal(encodeB64(hex('0000000000000000')), 'AAAAAAAAAAA');
  assert.equal(encodeB64(hex('0f5cd6510f5cd651')), 'D1zWUQ9c1lE');
  assert.equal(encodeB64(hex('e4d00f43e4d00f43')), '5NAPQ-TQD0M');
  assert.equal(encodeB64(hex('da29b56447b05c1e')), '2im1ZEewXB4');
  assert.equal(encodeB64(hex('c3ad7f264bb0bc15')), 'w61_JkuwvBU');
  assert.equal(encodeB64(hex('a4c8f9e995ebaca8')), 'pMj56ZXrrKg');
});

test('lengths: 16 bytes → 22 chars, 32 → 43, 8 → 11; never padded', () => {
  const rand = prng(1);
  for (const [n, chars] of [[16, 22], [32, 43], [8, 11], [0, 0], [1, 2], [2, 3], [3, 4]] as const) {
    const bytes = Buffer.from(Array.from({ length: n }, () => randInt(rand, 256)));
    const text = encodeB64(bytes);
    assert.equal(text.length, chars, `${n} bytes`);
    assert.doesNotMatch(text, /[=+/]/);
  }
});

test('encoding agrees with a hand-written reference on random inputs, and decodes back', () => {
  const rand = prng(42);
  for (let i = 0; i < 500; i++) {
    const n = randInt(rand, 48);
    const bytes = Buffer.from(Array.from({ length: n }, () => randInt(rand, 256)));
    const text = encodeB64(bytes);
    assert.equal(text, referenceEncode(bytes));
    assert.deepEqual(decodeB64(text, n), bytes);
  }
  // Bytes that exercise '-' (62) and '_' (63).
  assert.equal(encodeB64(hex('fbff')), '-_8');
  assert.equal(referenceEncode(hex('fbff')), '-_8');
});

test('checksumKey is the canonical encoding of a real digest', () => {
  const md5 = createHash('md5').update('').digest();
  assert.equal(checksumKey(md5), '1B2M2Y8AsgTpgAmY7PhCfg');
});

test('decoding is strict: only canonical text of the exact length is accepted', () => {
  const good = '1B2M2Y8AsgTpgAmY7PhCfg';
  assert.deepEqual(decodeB64(good, 16), hex('d41d8cd98f00b204e9800998ecf8427e'));
  // Wrong length for the byte count, or wrong byte count for the text.
  assert.equal(decodeB64(good, 32), undefined);
  assert.equal(decodeB64(good, 15), undefined);
  assert.equal(decodeB64(good.slice(0, 21), 16), undefined);
  assert.equal(decodeB64(`${good}A`, 16), undefined);
  // Padding, the standard alphabet's + and /, whitespace, other junk: jigdo's lenient decoder would
  // skip or map these, but [Parts] keys only ever match canonically (spec §4.5).
  assert.equal(decodeB64(`${good}==`, 16), undefined);
  assert.equal(decodeB64('1B2M2Y8AsgTpgAmY7PhC=g', 16), undefined);
  const withDash = encodeB64(hex('fbff00fbff00fbff00fbff00fbff00fb'));
  assert.match(withDash, /[-_]/);
  assert.deepEqual(decodeB64(withDash, 16), hex('fbff00fbff00fbff00fbff00fbff00fb'));
  assert.equal(decodeB64(withDash.replace(/-/g, '+').replace(/_/g, '/'), 16), undefined);
  assert.equal(decodeB64(' 1B2M2Y8AsgTpgAmY7PhCf', 16), undefined);
  assert.equal(decodeB64('1B2M2Y8AsgTpgAmY7PhCf ', 16), undefined);
  assert.equal(decodeB64('1B2M2Y8AsgTpgAmY7PhC.g', 16), undefined);
  assert.equal(decodeB64('1B2M2Y8AsgTpgAmY7PhCfé', 16), undefined);
  // Non-canonical trailing bits: the 22nd char carries 2 data bits; the low 4 bits must be zero.
  // 'g' = 32 = 0b100000 is canonical; 'h' = 0b100001 decodes to the same bytes but is not canonical.
  assert.equal(decodeB64('1B2M2Y8AsgTpgAmY7PhCfh', 16), undefined);
  assert.equal(decodeB64('1B2M2Y8AsgTpgAmY7PhCfv', 16), undefined);
  // rsync (8 bytes, 11 chars: the last carries 4 bits, the low 2 must be zero).
  assert.deepEqual(decodeB64('JlPQ0ivyGBk', 8), hex('2653d0d22bf21819'));
  assert.equal(decodeB64('JlPQ0ivyGBl', 8), undefined);
  assert.equal(decodeB64('', 0)?.length, 0);
});

test('kindOfKey tells MD5 and SHA-256 keys apart and rejects non-canonical ones', () => {
  assert.equal(kindOfKey('P6D_Q1IkDFd5tl9ZIOws9A'), 'md5');
  assert.equal(kindOfKey('igUsmECgerF32Kp4ht2iW_6vztOhBYmPhzePNaZfYk8'), 'sha256');
  assert.equal(kindOfKey('P6D_Q1IkDFd5tl9ZIOws9B'), undefined); // trailing bits set
  assert.equal(kindOfKey('P6D/Q1IkDFd5tl9ZIOws9A'), undefined);
  assert.equal(kindOfKey('P6D_Q1IkDFd5tl9ZIOws9A=='), undefined);
  assert.equal(kindOfKey('Src'), undefined);
  assert.equal(kindOfKey(''), undefined);
});
