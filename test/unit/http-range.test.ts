// `Range` headers of `jigdofs serve` (src/http/range.ts, RFC 9110 §14): what is served, ignored or refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_RANGES, parseRange } from '../../src/http/range.js';

const SIZE = 1000;

test('ranges, suffixes and open ends are clipped to the image; none with a byte of it is unsatisfiable', () => {
  assert.deepEqual(parseRange('bytes=0-99', SIZE), { kind: 'ranges', ranges: [{ start: 0, end: 99 }] });
  assert.deepEqual(parseRange('bytes=900-', SIZE), { kind: 'ranges', ranges: [{ start: 900, end: 999 }] });
  assert.deepEqual(parseRange('bytes=-10', SIZE), { kind: 'ranges', ranges: [{ start: 990, end: 999 }] });
  assert.deepEqual(parseRange('bytes=990-5000', SIZE), { kind: 'ranges', ranges: [{ start: 990, end: 999 }] });
  assert.deepEqual(parseRange('bytes=1000-', SIZE), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=-0', SIZE), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('items=0-1', SIZE), { kind: 'full' });
  assert.deepEqual(parseRange('bytes=5-1', SIZE), { kind: 'full' }, 'bad syntax is ignored');
});

test('leading zeros count for nothing (1*DIGIT): sixteen digits of 100 are 100, not a huge number', () => {
  assert.deepEqual(parseRange('bytes=-0000000000000100', SIZE), { kind: 'ranges', ranges: [{ start: 900, end: 999 }] });
  assert.deepEqual(parseRange('bytes=0-0000000000000009', SIZE), { kind: 'ranges', ranges: [{ start: 0, end: 9 }] });
  assert.deepEqual(parseRange('bytes=0000000000000001-2', SIZE), { kind: 'ranges', ranges: [{ start: 1, end: 2 }] });
  assert.deepEqual(parseRange('bytes=000-0', SIZE), { kind: 'ranges', ranges: [{ start: 0, end: 0 }] });
});

test('numerals past 2^53 are numbers too: a huge last position is clipped, a huge first one is past the end', () => {
  assert.deepEqual(parseRange('bytes=0-18446744073709551615', SIZE), { kind: 'ranges', ranges: [{ start: 0, end: 999 }] });
  assert.deepEqual(parseRange('bytes=99999999999999999999-', SIZE), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=-99999999999999999999', SIZE), { kind: 'ranges', ranges: [{ start: 0, end: 999 }] });
});

test('ranges asking for more bytes than the image has are answered with the image once (RFC 9110 §14.2)', () => {
  // 64 times the whole image would be 64 reads of it for a request of a few hundred bytes.
  assert.deepEqual(parseRange(`bytes=${Array(MAX_RANGES).fill('0-').join(',')}`, SIZE), { kind: 'full' });
  assert.deepEqual(parseRange('bytes=0-599,400-999', SIZE), { kind: 'full' });
  // Overlapping but within the image's size: served as asked.
  assert.deepEqual(parseRange('bytes=0-99,50-149', SIZE), { kind: 'ranges', ranges: [{ start: 0, end: 99 }, { start: 50, end: 149 }] });
  assert.deepEqual(parseRange(`bytes=${Array(MAX_RANGES + 1).fill('0-0').join(',')}`, SIZE), { kind: 'full' }, 'too many ranges');
});
