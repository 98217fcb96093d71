// The rolling scan of make-template (src/publish/scan-kernel.ts, src/format/rsync-rolling.ts): every
// window's rolled sum equals RsyncSum64 computed from scratch, across buffer boundaries and zero runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rsyncSum64 } from '../../src/format/rsync.js';
import { parseSum } from '../../src/format/rsync-rolling.js';
import { RollingScan, buildSumTable } from '../../src/publish/scan-kernel.js';
import { selectMatches } from '../../src/publish/select.js';

/** Deterministic bytes: random-looking, with zero runs and a few planted copies. */
function image(): Buffer {
  const buf = Buffer.alloc(300_000);
  let x = 12345;
  for (let i = 0; i < buf.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    buf[i] = x >>> 24;
  }
  buf.fill(0, 50_000, 120_000); // a zero run longer than several buffers
  buf.fill(0, 200_000, 200_700); // shorter than a window
  return buf;
}

/** Scans `img` in pieces of `piece` bytes, carrying blockLength - 1 bytes as the scan worker does. */
function scanAll(img: Buffer, B: number, positions: number[], piece: number): Array<[number, number]> {
  const lo = new Int32Array(positions.length);
  const hi = new Int32Array(positions.length);
  positions.forEach((p, i) => ([lo[i], hi[i]] = parseSum(rsyncSum64(img.subarray(p, p + B)))));
  const scan = new RollingScan(B, buildSumTable(lo, hi));
  const hits: Array<[number, number]> = [];
  const buf = Buffer.alloc(piece + B);
  let carry = 0;
  for (let pos = 0; pos < img.length; ) {
    const n = Math.min(piece, img.length - pos);
    img.copy(buf, carry, pos, pos + n);
    const base = pos - carry;
    scan.scan(buf, carry + n, (i, c) => hits.push([base + i, c]));
    const len = carry + n;
    buf.copyWithin(0, len - (B - 1), len);
    carry = B - 1;
    pos += n;
  }
  return hits;
}

/** Every window whose sum equals a candidate's, from scratch. */
function naive(img: Buffer, B: number, positions: number[]): Array<[number, number]> {
  const sums = positions.map((p) => rsyncSum64(img.subarray(p, p + B)).toString('hex'));
  const out: Array<[number, number]> = [];
  for (let i = 0; i + B <= img.length; i++) {
    const s = rsyncSum64(img.subarray(i, i + B)).toString('hex');
    sums.forEach((t, c) => {
      if (t === s) out.push([i, c]);
    });
  }
  return out;
}

test('rolled sums equal sums from scratch, across buffer boundaries (zero runs skipped)', () => {
  const img = image();
  const B = 256;
  const positions = [0, 1, 49_900, 120_000 - 100, 199_800, 299_744, 150_001];
  const expected = naive(img, B, positions);
  assert.ok(expected.length >= positions.length);
  for (const piece of [1000, 4096, 65_536, 300_000]) assert.deepEqual(scanAll(img, B, positions, piece), expected, `piece ${piece}`);
});

test('a candidate starting with a zero window is found at every offset of a zero run', () => {
  const img = image();
  const B = 256;
  const positions = [60_000, 12];
  const hits = scanAll(img, B, positions, 8192);
  assert.deepEqual(hits, naive(img, B, positions));
  assert.equal(hits.filter(([, c]) => c === 0).length, 70_000 - B + 1 + (700 - B + 1), 'every window of both zero runs');
});

test('greedy choice: the first match to end wins; a prefix beats the file it starts; duplicates by rounds', () => {
  const sizes = [5000, 3000, 40_000, 40_000, 300_000, 300_000];
  // A prefix (candidate 1, 3000 bytes) of candidate 0 at the same offset: the prefix ends first.
  assert.deepEqual(selectMatches([{ offset: 100, candidate: 0 }, { offset: 100, candidate: 1 }], sizes), [{ offset: 100, candidate: 1 }]);
  // Same bytes, one checksum round (40000 < 128 KiB): the later candidate wins, as in jigdo-file.
  assert.deepEqual(selectMatches([{ offset: 0, candidate: 2 }, { offset: 0, candidate: 3 }], sizes), [{ offset: 0, candidate: 3 }]);
  // Three rounds (300000 bytes): also the later one.
  assert.deepEqual(selectMatches([{ offset: 0, candidate: 4 }, { offset: 0, candidate: 5 }], sizes), [{ offset: 0, candidate: 5 }]);
  // Non-overlapping matches all stay, in image order.
  assert.deepEqual(selectMatches([{ offset: 9000, candidate: 1 }, { offset: 0, candidate: 0 }], sizes), [{ offset: 0, candidate: 0 }, { offset: 9000, candidate: 1 }]);
});
