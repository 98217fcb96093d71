/**
 * make-image's O_DIRECT output (src/build/direct-output.ts): aligned buffers found by probing, direct writes of
 * aligned blocks, and the fallbacks (direct off, an unaligned length or offset) that leave the write to the caller.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DirectOutput } from '../../src/build/direct-output.js';

let work: string;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-direct-'));
});
after(() => rm(work, { recursive: true, force: true }));

const pattern = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255));

test('direct writes of aligned blocks land at their offsets; a short or unaligned one is left to the caller', async (t) => {
  const file = path.join(work, 'out.img');
  await writeFile(file, Buffer.alloc(0));
  const d = DirectOutput.open(file, 12288);
  if (!d.active) {
    t.skip(`the file system of ${work} refuses O_DIRECT: nothing direct to test here`);
    return;
  }
  try {
    const a = d.allocate(8192);
    const b = d.allocate(4096);
    assert.ok(a.buffer instanceof SharedArrayBuffer, 'shared: the hashing worker reads it without a copy');
    pattern(8192, 1).copy(a);
    pattern(4096, 2).copy(b);
    assert.equal(await d.write(a, 4096), true);
    assert.equal(await d.write(b, 0), true);
    assert.equal(await d.write(a.subarray(0, 1000), 12288), false, 'a length that is not a multiple of 4 KiB');
    assert.equal(await d.write(b, 100), false, 'an unaligned offset');
    // A buffer made after blocks were written (the pool makes its last ones late) must not touch the image.
    d.allocate(4096);
  } finally {
    d.close();
  }
  const got = (await readFile(file)).subarray(0, 12288); // the probes write past the image's end (truncated by the caller)
  assert.ok(got.subarray(0, 4096).equals(pattern(4096, 2)));
  assert.ok(got.subarray(4096).equals(pattern(8192, 1)));
});

test('direct off (disabled, or a path it cannot open): plain shared buffers, every write left to the caller', async () => {
  for (const d of [DirectOutput.open(path.join(work, 'off.img'), 4096, false), DirectOutput.open(path.join(work, 'no-such-dir', 'x.img'), 4096)]) {
    assert.equal(d.active, false);
    const buf = d.allocate(4096);
    assert.equal(buf.length, 4096);
    assert.ok(buf.buffer instanceof SharedArrayBuffer);
    assert.equal(await d.write(buf, 0), false);
    d.close();
  }
});
