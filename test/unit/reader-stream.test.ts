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

/**
 * raw 100K | part p0 200K | raw 50K | parts p1..p8 of 100K each | raw 30K: 1180 KiB, 18+ blocks. With `repeatP1`,
 * p1 is also at the end, after the last raw (1280 KiB).
 */
function fixture(opts: Partial<ReaderOptions> = {}, { repeatP1 = false, failing = '' } = {}) {
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
    if (!partBytes.has(key)) partBytes.set(key, randomBytes(length));
    const need = parts.get(key) ?? { key, sum: Buffer.alloc(16), length, offsets: [] };
    need.offsets.push(at);
    parts.set(key, need);
    regions.push({ kind: 'part', offset: at, length, key });
    at += length;
  };
  addRaw(100 * KB);
  addPart('p0', 200 * KB);
  addRaw(50 * KB);
  for (let i = 1; i <= 8; i++) addPart(`p${i}`, 100 * KB);
  addRaw(30 * KB);
  if (repeatP1) addPart('p1', 100 * KB);
  const layout = new ImageLayout(at, 'md5', Buffer.alloc(16), regions, parts);
  const image = Buffer.concat(regions.map((r) => (r.kind === 'raw' ? raw.subarray(r.rawOffset, r.rawOffset + r.length) : partBytes.get(r.key)!)));

  const rawCalls: Array<[number, number]> = [];
  const partCalls: Array<[string, number, number]> = [];
  const prefetched: string[][] = [];
  /** Each `passed` call: the parts, and the bytes of each asked of the part port by then. */
  const passed: Array<{ keys: string[]; asked: Map<string, number> }> = [];
  const rawPort: RawBytes = {
    readInto: async (rawOffset, length, target, targetOffset) => {
      rawCalls.push([rawOffset, length]);
      raw.copy(target, targetOffset, rawOffset, rawOffset + length);
    },
  };
  const partPort: PartBytes = {
    readInto: async (key, from, length, target, targetOffset) => {
      partCalls.push([key, from, length]);
      if (key === failing) throw new Error(`part ${key} is not available`);
      partBytes.get(key)!.copy(target, targetOffset, from, from + length);
    },
    prefetch: (keys) => void prefetched.push([...keys]),
    passed: (keys) => {
      const asked = new Map<string, number>();
      for (const [key, , length] of partCalls) asked.set(key, (asked.get(key) ?? 0) + length);
      passed.push({ keys, asked });
    },
  };
  const reader = new ImageReader(layout, rawPort, partPort, { blockSize: BLOCK, readaheadBlocks: 2, readaheadMemory: 16 * BLOCK, prefetchBytes: 300 * KB, ...opts });
  const bytesAsked = () => rawCalls.reduce((n, [, l]) => n + l, 0) + partCalls.reduce((n, [, , l]) => n + l, 0);
  return { layout, image, reader, rawCalls, partCalls, prefetched, passed, bytesAsked };
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

/** A reader of a raw-only image of `size` random bytes (8 blocks read ahead, 24 kept, no prefetch); `onRead` sees each raw read. */
function rawOnlyReader(size: number, onRead: (rawOffset: number, length: number) => void) {
  const raw = randomBytes(size);
  const rawPort: RawBytes = {
    readInto: async (rawOffset, length, target, targetOffset) => {
      onRead(rawOffset, length);
      raw.copy(target, targetOffset, rawOffset, rawOffset + length);
    },
  };
  const partPort: PartBytes = { readInto: async () => assert.fail('no parts here'), prefetch: () => undefined };
  const layout = new ImageLayout(size, 'md5', Buffer.alloc(16), [{ kind: 'raw', offset: 0, length: size, rawOffset: 0 }], new Map());
  return { raw, reader: new ImageReader(layout, rawPort, partPort, { blockSize: BLOCK, readaheadBlocks: 8, readaheadMemory: 24 * BLOCK, prefetchBytes: 0 }) };
}

/** `step`-byte reads from 0 to `end`, every seventh handed over one read early (as FUSE's threads did in a `cp` of a default mount). */
function earlyEvery7th(end: number, step: number): number[] {
  const offsets: number[] = [];
  for (let o = 0; o < end; o += step) offsets.push(o);
  for (let i = 6; i + 1 < offsets.length; i += 7) [offsets[i], offsets[i + 1]] = [offsets[i + 1]!, offsets[i]!];
  return offsets;
}

test("a stream whose reads come a little out of order stays one stream: its prefetch still grows with it", async () => {
  const f = fixture({ prefetchBytes: 100 * KB, prefetchMaxBytes: 400 * KB });
  for (const o of earlyEvery7th(528 * KB, 16 * KB)) {
    const out = await f.reader.read(o, 16 * KB);
    assert.ok(out.equals(f.image.subarray(o, o + 16 * KB)), `read at ${o}`);
  }
  // As in order (the test above): 400K ahead of 528K names p2..p6. Each early read began a new stream before: 100K.
  assert.deepEqual(f.prefetched.at(-1), ['p2', 'p3', 'p4', 'p5', 'p6']);
});

test('a stream whose reads come a little out of order keeps its read-ahead depth (its ends count as one stream)', async () => {
  let highest = 0;
  const { raw, reader } = rawOnlyReader(64 * BLOCK, (rawOffset, length) => (highest = Math.max(highest, rawOffset + length)));
  for (const o of earlyEvery7th(32 * BLOCK, 16 * KB)) {
    const out = await reader.read(o, 16 * KB);
    assert.ok(out.equals(raw.subarray(o, o + 16 * KB)), `read at ${o}`);
  }
  await new Promise((r) => setImmediate(r));
  // Entering block 31, the stream read blocks 32..39 ahead. Each early read's stale end counted as a stream of its
  // own before, and the budget shared among them left one block: 33.
  assert.ok(highest >= 40 * BLOCK, `read ahead to block ${highest / BLOCK}`);
});

test("with a reorder window (a mount whose read-ahead was raised), a read further past a stream's end, off its multiples of one read, continues it", async () => {
  const starts = async (window?: (length: number) => number): Promise<number[]> => {
    const f = fixture();
    if (window) f.reader.allowReordering(window);
    const seen = new Set<number>();
    f.reader.watchStreams((start) => seen.add(start));
    const reads = [...Array.from({ length: 8 }, (_, i) => i * 16 * KB)];
    // Then 6.5 reads past the end, and on from there.
    for (let o = 128 * KB + 104 * KB; o + 16 * KB <= 640 * KB; o += 16 * KB) reads.push(o);
    for (const o of reads) assert.ok((await f.reader.read(o, 16 * KB)).equals(f.image.subarray(o, o + 16 * KB)), `read at ${o}`);
    return [...seen].sort((a, b) => a - b);
  };
  assert.deepEqual(await starts((length) => (length >= 16 * KB ? 256 * KB : 0)), [0]);
  assert.deepEqual(await starts(), [0, 232 * KB], 'without the window: a stream of its own from there');
  assert.deepEqual(await starts(() => 64 * KB), [0, 232 * KB], 'beyond the window: likewise');
});

test('a reorder window does not make a stream of two lone reads near each other', async () => {
  const f = fixture();
  f.reader.allowReordering(() => 256 * KB);
  await f.reader.read(200 * KB, 16 * KB);
  const before = f.bytesAsked();
  const out = await f.reader.read(200 * KB + 16 * KB + 40 * KB, 16 * KB); // 2.5 reads past the first one's end
  assert.ok(out.equals(f.image.subarray(256 * KB, 272 * KB)));
  assert.equal(f.bytesAsked() - before, 16 * KB, 'a lone read: exactly its bytes, nothing read ahead');
});

test("a read a few reads past a stream's end continues it; one further on is a lone read", async () => {
  const streamTo128K = async () => {
    const f = fixture();
    for (let o = 0; o < 128 * KB; o += 16 * KB) await f.reader.read(o, 16 * KB);
    return { f, asked: f.bytesAsked(), prefetches: f.prefetched.length };
  };
  const near = await streamTo128K();
  const nearAt = 128 * KB + 4 * 16 * KB; // four reads past the end (block 3's start): taken for one handed over early
  assert.ok((await near.f.reader.read(nearAt, 16 * KB)).equals(near.f.image.subarray(nearAt, nearAt + 16 * KB)));
  assert.equal(near.f.prefetched.length, near.prefetches + 1, 'the stream entered a new block: it prefetches');

  const far = await streamTo128K();
  const farAt = 256 * KB; // eight reads past the end (block 4's start, not read ahead)
  assert.ok((await far.f.reader.read(farAt, 16 * KB)).equals(far.f.image.subarray(farAt, farAt + 16 * KB)));
  assert.equal(far.f.bytesAsked() - far.asked, 16 * KB, 'exactly its bytes');
  assert.equal(far.f.prefetched.length, far.prefetches, 'no prefetch');
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
  let asked = 0;
  const { raw, reader } = rawOnlyReader(size, (_, length) => (asked += length));
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

/** The end of the last place of each part in the image. */
function lastEnds(layout: ImageLayout): Map<string, number> {
  return new Map([...layout.parts.values()].map((p) => [p.key, p.offsets.at(-1)! + p.length]));
}

/** Reads the whole image in `step`-byte reads, in order or with each pair of neighbours swapped (as FUSE's threads may hand them over). */
async function readStream(f: ReturnType<typeof fixture>, step: number, swapped: boolean): Promise<void> {
  const offsets: number[] = [];
  for (let o = 0; o < f.layout.size; o += step) offsets.push(o);
  if (swapped) for (let i = 1; i + 1 < offsets.length; i += 2) [offsets[i], offsets[i + 1]] = [offsets[i + 1]!, offsets[i]!];
  for (const o of offsets) {
    const out = await f.reader.read(o, step);
    assert.ok(out.equals(f.image.subarray(o, Math.min(f.layout.size, o + step))), `read at ${o}`);
  }
}

for (const [label, step] of [['16K', 16 * KB], ['1000-byte', 1000], ['128K', 128 * KB]] as const) {
  for (const swapped of [false, true]) {
    test(`a stream of ${label} reads${swapped ? ' handed over out of order' : ''} tells each part, after every byte of its last place was read`, async () => {
      for (const repeatP1 of [false, true]) {
        const f = fixture({}, { repeatP1 });
        await readStream(f, step, swapped);
        const told = f.passed;
        // Each part is told once the last of the blocks holding its last place has been read from the ports: once in
        // order; out of order maybe twice (a block read for a lone read and again for the stream: a second drop).
        const keys = told.flatMap((t) => t.keys);
        assert.deepEqual((swapped ? [...new Set(keys)] : keys).sort(), [...f.layout.parts.keys()].sort(), `repeatP1 ${repeatP1}`);
        for (const { keys, asked } of told) {
          for (const k of keys) {
            const need = f.layout.parts.get(k)!;
            // (p1 at two places: both were asked for by then)
            assert.ok(asked.get(k)! >= need.length * need.offsets.length, `${k}: ${asked.get(k)} bytes asked when told`);
          }
        }
      }
    });
  }
}

test('lone reads tell no part: only a stream is known to have passed it', async () => {
  const f = fixture();
  for (let o = 0; o < f.layout.size; o += 32 * KB) await f.reader.read(o + 1, 32 * KB - 2);
  assert.deepEqual(f.passed, []);
});

test("make-image's block stream (pooledImageBlocks) tells each part once, after the block holding its last place", async () => {
  const f = fixture({}, { repeatP1: true });
  const { pooledImageBlocks } = await import('../../src/build/stream.js');
  const ends = lastEnds(f.layout);
  for await (const block of pooledImageBlocks(f.reader, { blockSize: 96 * KB, depth: 2, held: 1 })) {
    const told = f.passed.splice(0).flatMap((p) => p.keys);
    const expected = [...ends].filter(([, end]) => end > block.offset && end <= block.offset + block.data.length).map(([k]) => k);
    assert.deepEqual(told.sort(), expected.sort(), `block at ${block.offset}`);
    block.release();
  }
});

test('a lone read inside blocks read already (a read FUSE handed over late) is served from them, asking the ports nothing', async () => {
  const f = fixture();
  for (let o = 0; o < 256 * KB; o += 16 * KB) await f.reader.read(o, 16 * KB);
  await new Promise((r) => setImmediate(r)); // (the read-ahead's blocks settle)
  const before = f.bytesAsked();
  const late = await f.reader.read(10 * KB + 3, 20 * KB); // within blocks 0 and 1, not where the stream goes on
  assert.ok(late.equals(f.image.subarray(10 * KB + 3, 30 * KB + 3)));
  assert.equal(f.bytesAsked(), before);
  // Outside them: the ports, for exactly its bytes.
  const far = await f.reader.read(1000 * KB + 1, 100);
  assert.ok(far.equals(f.image.subarray(1000 * KB + 1, 1000 * KB + 101)));
  assert.equal(f.bytesAsked(), before + 100);
});

test('a late read over a block whose read failed is not served from it: the error again, never its bytes', async () => {
  const f = fixture({}, { failing: 'p3' }); // p3: 550K-650K, blocks 8-10
  for (let o = 0; o < 512 * KB; o += 16 * KB) await f.reader.read(o, 16 * KB); // read-ahead reaches blocks 8-9
  await new Promise((r) => setImmediate(r));
  await assert.rejects(f.reader.read(560 * KB, 4 * KB), /p3 is not available/);
  const before = await f.reader.read(530 * KB, 4 * KB); // block 8, outside p3: right
  assert.ok(before.equals(f.image.subarray(530 * KB, 534 * KB)));
});
