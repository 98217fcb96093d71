/**
 * make-image's O_DIRECT output (src/build/direct-output.ts): page-aligned shared buffers, direct writes of
 * aligned blocks, and the fallbacks (direct off, an unaligned length or offset) that leave the write to the caller.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DirectOutput, pageAlignedShared } from '../../src/build/direct-output.js';

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
    assert.equal(d.allocate(100).length, 100, 'a buffer smaller than the probe');
    assert.equal(d.active, true);
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

test('direct buffers start on a page: the first byte of a shared WebAssembly memory, never a start found by probing', async (t) => {
  // A direct write from a buffer 512 bytes past a page start is taken by the kernel on a 512-byte-sector disk but
  // was 20 times slower here (BENCHMARKS.md, "O_DIRECT from page-aligned buffers"), and JavaScript cannot see an
  // address: what is checked is where the buffer comes from. A probed start inside a malloc'd SharedArrayBuffer
  // (the previous code) has a byteOffset of 16-4080 in a buffer of size + 4 KiB.
  const file = path.join(work, 'pages.img');
  await writeFile(file, Buffer.alloc(0));
  const d = DirectOutput.open(file, 16 << 20); // the probes write past 16 MiB
  if (!d.active) {
    t.skip(`the file system of ${work} refuses O_DIRECT: nothing direct to test here`);
    return;
  }
  try {
    for (let i = 0; i < 4; i++) {
      const buf = d.allocate(4 << 20);
      assert.equal(d.active, true, 'the file system took the page-aligned buffer');
      assert.ok(buf.buffer instanceof SharedArrayBuffer);
      assert.equal(buf.byteOffset, 0, "the memory's first byte: the page allocator's, not a probed start");
      assert.equal(buf.buffer.byteLength % 65536, 0, 'a WebAssembly memory of whole 64 KiB pages, not size + 4 KiB');
      buf.fill(i + 1);
      assert.equal(await d.write(buf, i * (4 << 20)), true);
    }
  } finally {
    d.close();
  }
  const got = await readFile(file);
  for (let i = 0; i < 4; i++) assert.ok(got.subarray(i * (4 << 20), (i + 1) * (4 << 20)).every((b) => b === i + 1), `block ${i} written where asked`);
});

test('pageAlignedShared: whole pages of shared memory, sized as asked', () => {
  for (const size of [1, 4096, 65536, (4 << 20) + 1]) {
    const buf = pageAlignedShared(size);
    assert.ok(buf, 'this engine gives shared WebAssembly memory');
    assert.equal(buf.length, size);
    assert.equal(buf.byteOffset, 0);
    assert.ok(buf.buffer instanceof SharedArrayBuffer);
    assert.equal(buf.buffer.byteLength, Math.ceil(size / 65536) * 65536);
  }
});

/**
 * A direct output for 4 blocks of 1 MiB in a new file `name`, and the 4 blocks allocated from it, filled with
 * pattern(block, seed + i); undefined (the test skipped) where the file system refuses O_DIRECT.
 */
async function fourBlocks(t: TestContext, name: string, seed: number): Promise<{ file: string; d: DirectOutput; blocks: Buffer[]; block: number } | undefined> {
  const file = path.join(work, name);
  await writeFile(file, Buffer.alloc(0));
  const block = 1 << 20;
  const d = DirectOutput.open(file, 4 * block);
  if (!d.active) {
    t.skip(`the file system of ${work} refuses O_DIRECT: nothing direct to test here`);
    return undefined;
  }
  const blocks = [0, 1, 2, 3].map((i) => {
    const b = d.allocate(block);
    pattern(block, seed + i).copy(b);
    return b;
  });
  return { file, d, blocks, block };
}

/** The file holds the 4 blocks of fourBlocks(…, seed) in order. */
async function assertFourBlocks(file: string, block: number, seed: number): Promise<void> {
  const got = await readFile(file);
  for (let i = 0; i < 4; i++) assert.ok(got.subarray(i * block, (i + 1) * block).equals(pattern(block, seed + i)), `block ${i}`);
}

test('direct writes in flight when a later buffer cannot be had page aligned still land: only new writes go buffered', async (t) => {
  const four = await fourBlocks(t, 'late.img', 1);
  if (!four) return;
  const { file, d, blocks, block } = four;
  // make-image keeps a few writes in flight while the block pool makes its next buffer
  const writes = blocks.map((b, i) => d.write(b, i * block));
  // A limit on address space (`ulimit -v`): no shared WebAssembly memory for the next buffer.
  const wasm = (globalThis as unknown as { WebAssembly: { Memory: unknown } }).WebAssembly;
  const memory = wasm.Memory;
  wasm.Memory = function refused(): never {
    throw new RangeError('WebAssembly.Memory(): could not allocate memory');
  };
  try {
    assert.ok(d.allocate(block).buffer instanceof SharedArrayBuffer, 'a plain shared buffer instead');
  } finally {
    wasm.Memory = memory;
  }
  assert.equal(d.active, false, 'new writes go through the caller');
  assert.deepEqual(await Promise.all(writes), [true, true, true, true], 'the writes in flight were not cut off (EBADF)');
  assert.equal(await d.write(blocks[0]!, 0), false);
  d.close();
  await assertFourBlocks(file, block, 1);
});

test('stop: direct writes in flight land, later ones are left to the caller, and the file holds both', async (t) => {
  const four = await fourBlocks(t, 'stopped.img', 7);
  if (!four) return;
  const { file, d, blocks, block } = four;
  const first = [d.write(blocks[0]!, 0), d.write(blocks[1]!, block)];
  d.stop(); // make-image's DiskWait: the disk holds the loop back
  assert.equal(d.active, false);
  const fh = await open(file, 'r+');
  try {
    // As in make-image, the buffered writes start while the direct ones are still in flight.
    const later = [2, 3].map(async (i) => {
      assert.equal(await d.write(blocks[i]!, i * block), false, 'a write after stop is the caller\'s');
      await fh.write(blocks[i]!, 0, block, i * block);
    });
    assert.deepEqual(await Promise.all(first), [true, true], 'the writes in flight were not cut off');
    await Promise.all(later);
    await fh.sync();
  } finally {
    await fh.close();
  }
  d.close();
  await assertFourBlocks(file, block, 7);
});
