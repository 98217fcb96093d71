// The reader's sequential-stream policy (src/image/reader.ts), through its ports (src/image/ports.ts) with
// fake sources that record what they are asked: a lone read asks for exactly its bytes; a read starting
// where the previous one ended is a stream, served from read-ahead blocks with the parts further ahead
// prefetched; every byte is the image's either way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ImageLayout, type PartNeed, type Region } from '../../src/image/layout.js';
import type { PartBytes, RawBytes } from '../../src/image/ports.js';
import { ImageReader, type ReaderOptions } from '../../src/image/reader.js';

const KB = 1024;
const BLOCK = 64 * KB;

/** raw 100K | part p0 200K | raw 50K | parts p1..p8 of 100K each | raw 30K: 1180 KiB, 18+ blocks. */
function fixture(opts: Partial<ReaderOptions> = {}) {
  const raw = randomBytes(180 * KB);
  const partBytes = new Map<string, Buffer>();
  const regions: Region[] = [];
  const parts = new Map<string, PartNeed>();
  let at = 0;
  let rawAt = 0;
  const addRaw = (length: number) => {
    regions.push({ kind: 'raw', offset: at, length, rawOffset: rawAt });
    at += length;
    rawAt += length;
  };
  const addPart = (key: string, length: number) => {
    partBytes.set(key, randomBytes(length));
    parts.set(key, { key, sum: Buffer.alloc(16), length, offsets: [at] });
    regions.push({ kind: 'part', offset: at, length, key });
    at += length;
  };
  addRaw(100 * KB);
  addPart('p0', 200 * KB);
  addRaw(50 * KB);
  for (let i = 1; i <= 8; i++) addPart(`p${i}`, 100 * KB);
  addRaw(30 * KB);
  const layout = new ImageLayout(at, 'md5', Buffer.alloc(16), regions, parts);
  const image = Buffer.concat(regions.map((r) => (r.kind === 'raw' ? raw.subarray(r.rawOffset, r.rawOffset + r.length) : partBytes.get(r.key)!)));

  const rawCalls: Array<[number, number]> = [];
  const partCalls: Array<[string, number, number]> = [];
  const prefetched: string[][] = [];
  const rawPort: RawBytes = {
    readInto: async (rawOffset, length, target, targetOffset) => {
      rawCalls.push([rawOffset, length]);
      raw.copy(target, targetOffset, rawOffset, rawOffset + length);
    },
  };
  const partPort: PartBytes = {
    readInto: async (key, from, length, target, targetOffset) => {
      partCalls.push([key, from, length]);
      partBytes.get(key)!.copy(target, targetOffset, from, from + length);
    },
    prefetch: (keys) => void prefetched.push([...keys]),
  };
  const reader = new ImageReader(layout, rawPort, partPort, { blockSize: BLOCK, readaheadBlocks: 2, readaheadMemory: 16 * BLOCK, prefetchBytes: 300 * KB, ...opts });
  const bytesAsked = () => rawCalls.reduce((n, [, l]) => n + l, 0) + partCalls.reduce((n, [, , l]) => n + l, 0);
  return { layout, image, reader, rawCalls, partCalls, prefetched, bytesAsked };
}

test('a lone read asks the ports for exactly its bytes: no read-ahead, no prefetch', async () => {
  const f = fixture();
  const out = await f.reader.read(90 * KB, 20 * KB); // the end of the raw head and the start of p0
  assert.ok(out.equals(f.image.subarray(90 * KB, 110 * KB)));
  assert.deepEqual(f.rawCalls, [[90 * KB, 10 * KB]]);
  assert.deepEqual(f.partCalls, [['p0', 0, 10 * KB]]);
  assert.deepEqual(f.prefetched, []);
  assert.equal(f.reader.stats.readaheadHits, 0);
});

test('a read starting where the last one ended is a stream: blocks ahead are read, parts ahead prefetched', async () => {
  const f = fixture();
  await f.reader.read(0, 16 * KB);
  assert.equal(f.bytesAsked(), 16 * KB);
  const second = await f.reader.read(16 * KB, 16 * KB);
  assert.ok(second.equals(f.image.subarray(16 * KB, 32 * KB)));
  // Block 0 (the read) and the next two blocks are asked for whole: 3 × 64K, on top of the first read.
  await new Promise((r) => setImmediate(r));
  assert.equal(f.bytesAsked(), 16 * KB + 3 * BLOCK);
  // A new stream announces the parts in the next 300K (from its end at 32K: p0 only starts at 100K).
  assert.deepEqual(f.prefetched, [['p0']]);
});

test('a stream is served whole and right from the blocks, and a jump elsewhere is a lone read again', async () => {
  const f = fixture();
  const step = 16 * KB;
  for (let o = 0; o < f.layout.size; o += step) {
    const out = await f.reader.read(o, step);
    assert.ok(out.equals(f.image.subarray(o, Math.min(f.layout.size, o + step))), `read at ${o}`);
  }
  assert.ok(f.reader.stats.readaheadHits > 0);
  // Each byte was asked for about once: the first read, then whole blocks.
  assert.ok(f.bytesAsked() <= f.layout.size + step, `${f.bytesAsked()} bytes asked for a ${f.layout.size}-byte image`);
  // Prefetches named every part ahead of the stream.
  const named = new Set(f.prefetched.flat());
  assert.deepEqual([...named].sort(), ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8']);

  const before = f.bytesAsked();
  const prefetches = f.prefetched.length;
  const lone = await f.reader.read(500 * KB + 3, 100);
  assert.ok(lone.equals(f.image.subarray(500 * KB + 3, 500 * KB + 103)));
  assert.equal(f.bytesAsked() - before, 100);
  assert.equal(f.prefetched.length, prefetches);
});

test("a stream's prefetch reaches further as it grows: twice its length, from prefetchBytes up to prefetchMaxBytes", async () => {
  const f = fixture({ prefetchBytes: 100 * KB, prefetchMaxBytes: 400 * KB });
  for (let o = 0; o <= 512 * KB; o += 16 * KB) await f.reader.read(o, 16 * KB);
  // At its start (32K read) the stream looks 100K ahead, [32K, 132K): p0 only.
  assert.deepEqual(f.prefetched[0], ['p0']);
  // Entering block 8 with 528K read, it looks 400K ahead, [528K, 928K): p2 (450K-550K) to p6 (850K-950K).
  // A fixed 100K would name p2 and p3 only.
  assert.deepEqual(f.prefetched.at(-1), ['p2', 'p3', 'p4', 'p5', 'p6']);
});

test('reads outside the image, or of nothing, ask the ports for nothing', async () => {
  const f = fixture();
  assert.equal((await f.reader.read(f.layout.size, 10)).length, 0);
  assert.equal((await f.reader.read(-1, 10)).length, 0);
  assert.equal((await f.reader.read(5, 0)).length, 0);
  assert.equal(await f.reader.readTo(1.5, Buffer.alloc(4)), 0);
  const tail = await f.reader.read(f.layout.size - 10, 100);
  assert.ok(tail.equals(f.image.subarray(f.layout.size - 10)));
  assert.equal(f.bytesAsked(), 10);
});

test('parallel streams share the read-ahead budget: blocks are not evicted before their stream reads them', async () => {
  // 8 streams reading their eighth of a raw-only image in turns, as 8 ranged HTTP clients do. At full
  // depth (1 + 8 blocks each) they would need 72 blocks of a 24-block budget, and read most bytes twice.
  const size = 96 * BLOCK;
  const raw = randomBytes(size);
  let asked = 0;
  const rawPort: RawBytes = {
    readInto: async (rawOffset, length, target, targetOffset) => {
      asked += length;
      raw.copy(target, targetOffset, rawOffset, rawOffset + length);
    },
  };
  const partPort: PartBytes = { readInto: async () => assert.fail('no parts here'), prefetch: () => undefined };
  const layout = new ImageLayout(size, 'md5', Buffer.alloc(16), [{ kind: 'raw', offset: 0, length: size, rawOffset: 0 }], new Map());
  const reader = new ImageReader(layout, rawPort, partPort, { blockSize: BLOCK, readaheadBlocks: 8, readaheadMemory: 24 * BLOCK, prefetchBytes: 0 });
  const streams = 8;
  const share = size / streams;
  const step = 16 * KB;
  for (let at = 0; at < share; at += step) {
    await Promise.all(
      Array.from({ length: streams }, async (_, s) => {
        const offset = s * share + at;
        const got = await reader.read(offset, step);
        assert.ok(got.equals(raw.subarray(offset, offset + step)), `stream ${s} at ${at}`);
      }),
    );
  }
  // Before a stream is seen continuing, the others read ahead at full depth once: the only waste left.
  assert.ok(asked <= size * 1.5, `asked the source for ${asked} bytes to serve ${size}`);
});
