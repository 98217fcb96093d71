/**
 * How a part is split into ranges fetched in parallel, and how the ranges' progress moves: a whole-file
 * stream advances every range it covers, a restart forgets everything written.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PartRanges, planRanges } from '../../src/network/part-ranges.js';

const spans = (length: number, rangeSize: number, streams: number): Array<[number, number]> =>
  planRanges(length, rangeSize, streams).map((r) => [r.start, r.end]);

describe('planRanges', () => {
  test('a part no longer than a range, or one stream per part: one range', () => {
    assert.deepEqual(spans(1000, 1000, 4), [[0, 1000]]);
    assert.deepEqual(spans(999, 1000, 4), [[0, 999]]);
    assert.deepEqual(spans(10_000, 1000, 1), [[0, 10_000]]);
    assert.deepEqual(spans(0, 1000, 4), [[0, 0]], 'an empty part still has its one (empty) range');
  });

  test('a longer part: ceil(length / rangeSize) ranges of one size, the last one shorter', () => {
    assert.deepEqual(spans(1001, 1000, 4), [[0, 501], [501, 1001]]);
    assert.deepEqual(spans(3 << 20, 256 << 10, 4).length, 12, 'the 3 MB test part in 256 KiB ranges');
    assert.deepEqual(spans(10, 3, 2), [[0, 3], [3, 6], [6, 9], [9, 10]]);
    // More ranges than streams: the streams take them in turn (PartFetch), so the count is not capped.
    assert.equal(spans(100 << 20, 1 << 20, 2).length, 100);
  });

  test('the ranges cover the part exactly, in order, each starting with nothing written', () => {
    for (const [length, size] of [[1, 1], [7, 2], [1_500_000, 262_144], [3_000_000, 262_144], [4_194_305, 4_194_304]] as const) {
      const ranges = planRanges(length, size, 4);
      assert.equal(ranges[0]!.start, 0);
      assert.equal(ranges.at(-1)!.end, length);
      for (let i = 1; i < ranges.length; i++) assert.equal(ranges[i]!.start, ranges[i - 1]!.end);
      for (const r of ranges) {
        assert.equal(r.pos, r.start);
        assert.ok(r.end > r.start, `no empty range in ${length}/${size}`);
      }
    }
  });
});

describe('PartRanges', () => {
  test('complete once every range reached its end; unfinished lists the others', () => {
    const p = new PartRanges(10, 3, 2);
    assert.equal(p.complete(), false);
    p.ranges[0]!.pos = 3;
    p.ranges[2]!.pos = 9;
    assert.deepEqual(p.unfinished().map((r) => r.start), [3, 9]);
    p.ranges[1]!.pos = 6;
    p.ranges[3]!.pos = 10;
    assert.equal(p.complete(), true);
    assert.deepEqual(p.unfinished(), []);
  });

  test('a whole-file stream at pos advances every range it covers, never backwards', () => {
    const p = new PartRanges(10, 3, 2);
    p.ranges[3]!.pos = 10;
    p.advanceAll(5);
    assert.deepEqual(p.ranges.map((r) => r.pos), [3, 5, 6, 10]);
    p.ranges[1]!.pos = 6;
    p.advanceAll(4);
    assert.deepEqual(p.ranges.map((r) => r.pos), [3, 6, 6, 10], 'what is written stays written');
  });

  test('contiguous: the bytes written from the start without a gap (what a resumed fetch keeps)', () => {
    const p = new PartRanges(10, 3, 2);
    assert.equal(p.contiguous(), 0);
    p.ranges[1]!.pos = 5; // a later range's bytes do not count while an earlier one has a gap
    assert.equal(p.contiguous(), 0);
    p.ranges[0]!.pos = 2;
    assert.equal(p.contiguous(), 2);
    p.ranges[0]!.pos = 3;
    assert.equal(p.contiguous(), 5);
    p.advanceAll(10);
    assert.equal(p.contiguous(), 10);
    assert.equal(new PartRanges(0, 3, 2).contiguous(), 0);
  });

  test('restart: every range from its start again', () => {
    const p = new PartRanges(10, 3, 2);
    p.advanceAll(10);
    assert.equal(p.complete(), true);
    p.restart();
    assert.deepEqual(p.ranges.map((r) => r.pos), [0, 3, 6, 9]);
  });
});
