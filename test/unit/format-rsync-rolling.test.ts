/** The rolling RsyncSum64 (src/format/rsync-rolling.ts) equals rsyncSum64 of its window at every step. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rsyncSum64 } from '../../src/format/rsync.js';
import { RollingRsyncSum64 } from '../../src/format/rsync-rolling.js';

function bytes(n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0, k = 0; i < n; k++) i += createHash('sha256').update(String(k)).digest().copy(out, i);
  return out;
}

test('rolling over 20 KB with windows of 1, 7, 1024 and 4096 bytes matches a fresh sum at every offset', () => {
  const data = bytes(20_000);
  for (const window of [1, 7, 1024, 4096]) {
    const r = new RollingRsyncSum64(window);
    r.reset(data, 0);
    for (let at = 0; at + window <= data.length; at++) {
      if (at > 0) r.roll(data[at - 1]!, data[at + window - 1]!);
      if (at % 97 !== 0 && at + window !== data.length) continue;
      const fresh = rsyncSum64(data.subarray(at, at + window));
      assert.ok(r.equals(fresh), `window ${window} at ${at}`);
      assert.equal(r.key(), RollingRsyncSum64.keyOf(fresh));
    }
  }
});

test('a known value: the sum of 1024 zero bytes and of 0xff bytes (high bytes, wrap-around)', () => {
  for (const fill of [0, 0xff]) {
    const data = Buffer.alloc(3000, fill);
    const r = new RollingRsyncSum64(1024);
    r.reset(data, 0);
    for (let i = 0; i < 1000; i++) r.roll(data[i]!, data[i + 1024]!);
    assert.ok(r.equals(rsyncSum64(data.subarray(1000, 2024))));
  }
});
