// ImageReader through openImage (src/engine/session.ts): every sample read whole and in ~200 random ranges,
// compared with bytes that do not come from our code (image.iso, published MD5s, parts files, the bzip2
// tool, jigdo-file's own make-image stream); the > 4 GiB sample on both sides of 2^32; missing parts;
// memory use while streaming 200 MB.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { deflateSync } from 'node:zlib';
import { loadJigdo, openImage, selectImage, type ImageSession, type SourceOptions } from '../../src/engine/session.js';
import { UnavailableError } from '../../src/format/errors.js';
import { ImageReader } from '../../src/image/reader.js';
import type { RawBytes } from '../../src/image/ports.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { SAMPLES, SAMPLE_PARTS, prng, randInt } from '../helpers/cli.js';
import { buildFixtures, type FixtureSet } from '../helpers/fixtures.js';
import { md5hex as md5 } from '../helpers/hash.js';

const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-reader-'));
const IMAGE = readFileSync(path.join(SAMPLES, 'image.iso'));
const IMAGE_MD5 = '784af77770a40eb11678baaea6484bff';
const MULTIPART_MD5 = '018ef75150c7a32a70c67a8dcc885924';
const BIG = path.join(SAMPLES, 'big-4g');
const BIG_SIZE = 4500100003;

let cacheSerial = 0;
const options = (scan: string[], extra: Partial<SourceOptions> = {}): SourceOptions => ({
  local: [],
  scan,
  cacheDir: path.join(work, `cache-${++cacheSerial}`),
  memory: 64 << 20,
  log: () => {},
  ...extra,
});

const sessions: ImageSession[] = [];
async function open(jigdoFile: string, scan: string[] = [SAMPLE_PARTS], extra: Partial<SourceOptions> = {}): Promise<ImageSession> {
  const jigdo = await loadJigdo(jigdoFile);
  const s = await openImage(jigdo, selectImage(jigdo), options(scan, extra));
  sessions.push(s);
  return s;
}

// ---------------------------------------------------------------------------------------------
// jigdo-file's own rebuild of the 4.5 GB image, streamed (nothing written to disk): started now so that
// it runs while the other tests do; only the ranges the big-4g test checks are kept.

const BIG_RANGES: Array<[number, number]> = [
  [0, 3100], // head.bin and the first raw bytes
  [2 ** 32 - 100, 2 ** 32 + 100], // both sides of 4 GiB
  [4500000000 - 50, BIG_SIZE], // raw, tail.bin, the final 3 raw bytes
];
const STREAM_LIMIT_MS = 60_000;

interface StreamResult {
  ranges: Buffer[];
  total: number;
  ms: number;
  skipped?: string;
}

function jigdoFileStream(): Promise<StreamResult> {
  const started = Date.now();
  const child = spawn(
    'jigdo-file',
    ['make-image', '--image=-', `--jigdo=${path.join(BIG, 'big-4g.jigdo')}`, `--template=${path.join(BIG, 'big-4g.template')}`, '--no-cache', path.join(BIG, 'parts')],
    { stdio: ['ignore', 'pipe', 'ignore'], cwd: BIG },
  );
  after(() => child.kill('SIGKILL'));
  const ranges = BIG_RANGES.map(([a, b]) => Buffer.alloc(b - a));
  let pos = 0;
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STREAM_LIMIT_MS);
    child.stdout.on('data', (chunk: Buffer) => {
      const end = pos + chunk.length;
      BIG_RANGES.forEach(([a, b], i) => {
        const from = Math.max(a, pos);
        const to = Math.min(b, end);
        if (from < to) chunk.copy(ranges[i]!, from - a, from - pos, to - pos);
      });
      pos = end;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const ms = Date.now() - started;
      const skipped = signal ? `jigdo-file stream killed after ${ms} ms (${signal})` : code !== 0 ? `jigdo-file exited with ${code}` : undefined;
      // jigdo-file checks the image MD5 itself at the end of the stream: exit code 0 means it matched.
      resolve({ ranges, total: pos, ms, skipped });
    });
  });
}
const bigStream = jigdoFileStream();

after(async () => {
  for (const s of sessions) await s.close().catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

/** Region boundaries as `jigdo-file ls` printed them (golden files): offset, and offset + length. */
function goldenBoundaries(golden: string): number[] {
  const out = new Set<number>();
  for (const line of readFileSync(path.join(SAMPLES, golden), 'utf8').split('\n')) {
    const w = line.trim().split(/\s+/);
    if (w[0] === 'in-template' || w[0]!.startsWith('need-file')) {
      out.add(Number(w[1]));
      out.add(Number(w[1]) + Number(w[2]));
    }
  }
  return [...out].sort((a, b) => a - b);
}

/** ~200 (offset, length) pairs: random, across region boundaries, 1-byte, at and past the end. */
function ranges(size: number, boundaries: number[], seed: number): Array<[number, number]> {
  const rand = prng(seed);
  const out: Array<[number, number]> = [];
  for (let i = 0; i < 70; i++) out.push([randInt(rand, size), 1 + randInt(rand, 70000)]);
  for (let i = 0; i < 70; i++) {
    const b = boundaries[randInt(rand, boundaries.length)]!;
    const start = Math.max(0, b - 1 - randInt(rand, 3000));
    out.push([start, b - start + 1 + randInt(rand, 3000)]);
  }
  for (const b of boundaries) {
    if (b > 0) out.push([b - 1, 1], [b - 1, 2]);
    if (b < size) out.push([b, 1]);
  }
  for (let i = 0; i < 20; i++) out.push([randInt(rand, size), 1]);
  for (let i = 0; i < 10; i++) {
    const k = 1 + randInt(rand, 5000);
    out.push([size - k, k]); // exactly to the end
    out.push([size - k, k + 1 + randInt(rand, 100000)]); // past the end: clipped
  }
  out.push([0, size], [size - 1, 1], [0, 1], [size - 1, 10]);
  return out;
}

async function checkRanges(s: ImageSession, expected: Buffer, list: Array<[number, number]>): Promise<void> {
  for (const [offset, length] of list) {
    const got = await s.reader.read(offset, length);
    const want = expected.subarray(offset, Math.min(expected.length, offset + length));
    assert.equal(got.length, want.length, `read(${offset}, ${length}) length`);
    assert.ok(got.equals(want), `read(${offset}, ${length}) bytes differ`);
  }
}

const SAMPLE_IMAGES: Array<{ jigdo: string; golden: string; md5: string }> = [
  { jigdo: 'jf-md5-gzip.jigdo', golden: 'golden-ls-jf-md5-gzip.txt', md5: IMAGE_MD5 },
  { jigdo: 'jf-sha256-bzip2.jigdo', golden: 'golden-ls-jf-sha256-bzip2.txt', md5: IMAGE_MD5 },
  { jigdo: 'jte-md5-gzip.jigdo', golden: 'golden-ls-jte-md5-gzip.txt', md5: IMAGE_MD5 },
  { jigdo: 'jte-sha256-bzip2.jigdo', golden: 'golden-ls-jte-sha256-bzip2.txt', md5: IMAGE_MD5 },
  { jigdo: 'jte-multipart.jigdo', golden: 'golden-ls-jte-multipart.txt', md5: MULTIPART_MD5 },
  { jigdo: 'quoting.jigdo', golden: 'golden-ls-jf-md5-gzip.txt', md5: IMAGE_MD5 },
  { jigdo: 'jf-md5-gzip.gz.jigdo', golden: 'golden-ls-jf-md5-gzip.txt', md5: IMAGE_MD5 },
];

SAMPLE_IMAGES.forEach(({ jigdo, golden, md5: wantMd5 }, n) => {
  test(`${jigdo}: whole image and ~200 random ranges`, async () => {
    const s = await open(path.join(SAMPLES, jigdo));
    const whole = await s.reader.read(0, s.reader.size);
    assert.equal(md5(whole), wantMd5, 'MD5 of the whole image');
    if (wantMd5 === IMAGE_MD5) assert.ok(whole.equals(IMAGE));
    const expected = wantMd5 === IMAGE_MD5 ? IMAGE : whole; // jte-multipart: the MD5-checked whole read
    const bounds = goldenBoundaries(golden);
    if (jigdo === 'jte-multipart.jigdo') {
      // Where the one big type-2 entry crosses DATA parts (spec §2.5): 974,480 and 1,048,576 bytes in.
      bounds.push(227696 + 974480, 227696 + 974480 + 1048576);
    }
    const list = ranges(expected.length, bounds, 1000 + n);
    assert.ok(list.length >= 200, `${list.length} ranges`);
    await checkRanges(s, expected, list);
    // Reads at or beyond the end, and empty reads, give nothing.
    assert.equal((await s.reader.read(expected.length, 10)).length, 0);
    assert.equal((await s.reader.read(expected.length + 12345, 10)).length, 0);
    assert.equal((await s.reader.read(100, 0)).length, 0);
    // Many concurrent reads at once.
    const rand = prng(77 + n);
    const batch = Array.from({ length: 64 }, () => [randInt(rand, expected.length), 1 + randInt(rand, 200000)] as [number, number]);
    const got = await Promise.all(batch.map(([o, l]) => s.reader.read(o, l)));
    batch.forEach(([o, l], i) => assert.ok(got[i]!.equals(expected.subarray(o, Math.min(expected.length, o + l))), `concurrent read(${o}, ${l})`));
    // A sequential reader (FUSE-style 128 KiB requests, served from read-ahead blocks).
    const seq: Buffer[] = [];
    for (let o = 0; o < expected.length; o += 128 << 10) seq.push(await s.reader.read(o, 128 << 10));
    assert.ok(Buffer.concat(seq).equals(expected), 'sequential 128 KiB reads');
  });
});

test('generated fixtures (test/helpers/fixtures.ts): every variant read whole and in random ranges', async () => {
  // The fixtures need xorriso and jigdo-file (scripts/setup.sh installs them): failing to build them fails the test.
  const set: FixtureSet = await buildFixtures();
  for (const [n, v] of Object.values(set.variants).entries()) {
    const image = readFileSync(v.image);
    assert.equal(md5(image), v.imageMd5, `${v.name}: fixture image`);
    const s = await open(v.jigdo, [v.partsDir]);
    assert.equal(s.reader.size, v.imageSize, v.name);
    const whole = await s.reader.read(0, s.reader.size);
    assert.equal(md5(whole), v.imageMd5, `${v.name}: whole image`);
    // Region boundaries from jigdo-file's own listing of the template, when it is installed.
    let bounds = [0, image.length];
    {
      const listing = execFileSync('jigdo-file', ['ls', `--template=${v.template}`], { encoding: 'utf8' });
      bounds = listing.split('\n').map((l) => l.trim().split(/\s+/)).filter((w) => w[0] === 'in-template' || w[0]?.startsWith('need-file')).flatMap((w) => [Number(w[1]), Number(w[1]) + Number(w[2])]);
    }
    await checkRanges(s, image, ranges(image.length, bounds, 500 + n).slice(0, 150));
    await s.close();
    sessions.splice(sessions.indexOf(s), 1);
  }
});

test('a zero-length part needs no file: jte-md5-gzip reads whole without parts/empty', async () => {
  const dir = path.join(work, 'no-empty');
  await mkdir(path.join(dir, 'sub'), { recursive: true });
  for (const f of ['a.bin', 'b.bin', 'small.txt', 'sub/c.bin']) await copyFile(path.join(SAMPLE_PARTS, f), path.join(dir, f));
  const s = await open(path.join(SAMPLES, 'jte-md5-gzip.jigdo'), [dir]);
  assert.ok((await s.reader.read(0, s.reader.size)).equals(IMAGE));
});

test('a part no source has: its bytes reject with UnavailableError, everything around it reads', async () => {
  // Only a.bin and sub/c.bin: b.bin (40000 bytes at 73728 and again at 116736, per golden-ls) is missing.
  const dir = path.join(work, 'partial');
  await mkdir(path.join(dir, 'sub'), { recursive: true });
  for (const f of ['a.bin', 'sub/c.bin']) await copyFile(path.join(SAMPLE_PARTS, f), path.join(dir, f));
  const s = await open(path.join(SAMPLES, 'jf-md5-gzip.jigdo'), [dir]);
  const holes: Array<[number, number]> = [
    [73728, 113728],
    [116736, 156736],
  ];
  const touchesHole = (o: number, l: number) => holes.some(([a, b]) => o < b && o + l > a);
  const expectMissing = async (o: number, l: number) =>
    assert.rejects(s.reader.read(o, l), (err: unknown) => {
      assert.ok(err instanceof UnavailableError, `read(${o}, ${l}): expected UnavailableError, got ${String(err)}`);
      assert.match(err.message, /QiYNQ8Ib2_eZJAaaz5Uwtg/);
      return true;
    });
  await expectMissing(73728, 40000);
  await expectMissing(73728, 1);
  await expectMissing(113727, 1);
  await expectMissing(73700, 100); // crossing into the hole
  await expectMissing(116000, 2000);
  await expectMissing(0, IMAGE.length);
  // Around the holes, and again after the failures.
  await checkRanges(s, IMAGE, [
    [0, 73728],
    [73727, 1],
    [113728, 3008],
    [113728, 1],
    [116735, 1],
    [156736, IMAGE.length - 156736],
    [67584, 5000], // a.bin
    [157696, 70000], // c.bin
  ]);
  const rand = prng(5);
  for (let i = 0; i < 100; i++) {
    const o = randInt(rand, IMAGE.length);
    const l = 1 + randInt(rand, 20000);
    if (touchesHole(o, l)) await expectMissing(o, l);
    else await checkRanges(s, IMAGE, [[o, l]]);
  }
  // A sequential reader: requests that do not touch a hole still succeed though their blocks do.
  for (let o = 0; o < IMAGE.length; o += 4096) {
    if (touchesHole(o, 4096)) await expectMissing(o, 4096);
    else await checkRanges(s, IMAGE, [[o, 4096]]);
  }
});

test('a failed read returns only once no source writes into the buffer any more (FUSE frees it on reply)', async () => {
  // b.bin is missing and fails at once; the raw bytes before it arrive 150 ms later. Had readTo rejected
  // on the first failure, those late bytes would land in a buffer FUSE had already taken back.
  const dir = path.join(work, 'late-writes');
  await mkdir(path.join(dir, 'sub'), { recursive: true });
  for (const f of ['a.bin', 'sub/c.bin']) await copyFile(path.join(SAMPLE_PARTS, f), path.join(dir, f));
  const s = await open(path.join(SAMPLES, 'jf-md5-gzip.jigdo'), [dir]);
  const slowRaw: RawBytes = {
    readInto: async (...args) => {
      await sleep(150);
      return s.raw.readInto(...args);
    },
  };
  const reader = new ImageReader(s.layout, slowRaw, s.parts);
  for (const [offset, length] of [
    [0, 120000], // raw, a.bin, raw, b.bin
    [60000, 1 << 20], // through both copies of b.bin
  ] as const) {
    const target = Buffer.alloc(length);
    await assert.rejects(reader.readTo(offset, target), UnavailableError);
    target.fill(0xaa);
    await sleep(300);
    assert.ok(target.every((b) => b === 0xaa), `read(${offset}, ${length}): a source wrote into the buffer after the read failed`);
  }
  // The sequential path (read-ahead blocks) falls back to a direct read of just the request.
  const seq = Buffer.alloc(4096);
  for (let o = 0; o < 73728; o += 4096) {
    await reader.readTo(o, seq);
    assert.ok(seq.equals(IMAGE.subarray(o, o + 4096)), `sequential read at ${o}`);
  }
});

test('synthetic template mixing DATA and BZIP parts, an empty part, and a type-2 entry spanning parts', async () => {
  const rand = prng(9);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => randInt(rand, 256)));
  const r1 = bytes(3000);
  const r2 = bytes(2500);
  const r3 = Buffer.from('the end.');
  const part = readFileSync(path.join(SAMPLE_PARTS, 'a.bin'));
  const image = Buffer.concat([r1, part, r2, r3]);
  const raw = Buffer.concat([r1, r2, r3]);
  const u48 = (n: number) => {
    const b = Buffer.alloc(6);
    b.writeUIntLE(n, 0, 6);
    return b;
  };
  const chunk = (id: string, payload: Buffer, unc: number) => Buffer.concat([Buffer.from(id), u48(16 + payload.length), u48(unc), payload]);
  const rawParts = [
    chunk('DATA', deflateSync(raw.subarray(0, 4000)), 4000), // r1 and 1000 bytes of r2
    chunk('BZIP', execFileSync('bzip2', ['-9c'], { input: raw.subarray(4000, 5000) }), 1000),
    chunk('DATA', deflateSync(Buffer.alloc(0)), 0),
    chunk('BZIP', execFileSync('bzip2', ['-9c'], { input: raw.subarray(5000, 5501) }), 501),
    chunk('DATA', deflateSync(raw.subarray(5501)), raw.length - 5501),
  ];
  const sum = (b: Buffer) => createHash('md5').update(b).digest();
  const entries = Buffer.concat([
    Buffer.from([2]), u48(3000),
    Buffer.from([6]), u48(part.length), Buffer.alloc(8), sum(part),
    Buffer.from([6]), u48(0), Buffer.alloc(8), sum(Buffer.alloc(0)), // zero-length part
    Buffer.from([2]), u48(2500),
    Buffer.from([2]), u48(r3.length), // two adjacent type-2 entries
    Buffer.from([5]), u48(image.length), sum(image), Buffer.from([0, 4, 0, 0]),
  ]);
  const descLen = 16 + entries.length;
  const template = Buffer.concat([
    Buffer.from('JigsawDownload template 1.2 synthetic\r\nmixed parts\r\n\r\n'),
    ...rawParts,
    Buffer.from('DESC'), u48(descLen), entries, u48(descLen),
  ]);
  const dir = path.join(work, 'mixed');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'mixed.template'), template);
  // Hand-made .jigdo without Template-MD5Sum (allowed): the part is found by --scan.
  await writeFile(path.join(dir, 'mixed.jigdo'), '[Jigdo]\nVersion=1.2\n[Image]\nFilename=mixed.iso\nTemplate=mixed.template\n');
  const s = await open(path.join(dir, 'mixed.jigdo'));
  assert.equal(s.template.chunks.length, 5);
  assert.ok((await s.reader.read(0, image.length)).equals(image));
  const bounds = [0, 3000, 3000 + part.length, 3000 + part.length + 1000, 3000 + part.length + 2000, 3000 + part.length + 2500, image.length];
  await checkRanges(s, image, ranges(image.length, bounds, 4242));
});

// ---------------------------------------------------------------------------------------------
// big-4g: 4,500,100,003 bytes, 5,001 BZIP parts, one type-2 entry of 4,499,997,000 bytes (spec §2.7).

/** Raw-stream bytes [from, to) decompressed with the bzip2 tool from our own walk of the part headers. */
function bigRaw(from: number, to: number): Buffer {
  const t = readFileSync(path.join(BIG, 'big-4g.template'));
  let pos = 0;
  for (let i = 0; i < 3; i++) pos = t.indexOf(0x0a, pos) + 1;
  const out: Buffer[] = [];
  let rawStart = 0;
  while (rawStart < to && t.toString('latin1', pos, pos + 4) === 'BZIP') {
    const partLen = t.readUIntLE(pos + 4, 6);
    const uncLen = t.readUIntLE(pos + 10, 6);
    if (rawStart + uncLen > from) {
      const data = execFileSync('bzip2', ['-dc'], { input: t.subarray(pos + 16, pos + partLen), maxBuffer: 1 << 24 });
      assert.equal(data.length, uncLen);
      out.push(data.subarray(Math.max(0, from - rawStart), Math.min(uncLen, to - rawStart)));
    }
    rawStart += uncLen;
    pos += partLen;
  }
  return Buffer.concat(out);
}

test('big-4g: start, both sides of 2^32, and the end, against the parts and the bzip2 tool', async () => {
  const s = await open(path.join(BIG, 'big-4g.jigdo'), [path.join(BIG, 'parts')]);
  assert.equal(s.reader.size, BIG_SIZE);
  const head = readFileSync(path.join(BIG, 'parts', 'head.bin'));
  const tail = readFileSync(path.join(BIG, 'parts', 'tail.bin'));
  assert.equal(head.length, 3000);
  assert.equal(tail.length, 100000);
  // Image layout (golden-ls): head.bin @0, raw 3000..4,500,000,000, tail.bin, 3 raw bytes.
  const RAW2_START = 4499997000; // raw offset of the final 3-byte entry
  const expect = {
    start: Buffer.concat([head, bigRaw(0, 100)]),
    around4g: bigRaw(2 ** 32 - 100 - 3000, 2 ** 32 + 100 - 3000),
    end: Buffer.concat([bigRaw(RAW2_START - 50, RAW2_START), tail, bigRaw(RAW2_START, RAW2_START + 3)]),
  };
  assert.equal(expect.end.subarray(-3).toString('latin1'), 'END');
  assert.ok((await s.reader.read(0, 3100)).equals(expect.start));
  assert.ok((await s.reader.read(2 ** 32 - 100, 200)).equals(expect.around4g));
  assert.ok((await s.reader.read(4500000000 - 50, 100000 + 1000)).equals(expect.end), 'end (read past the end, clipped)');
  // Smaller reads straddling exactly 2^32, and each byte around it.
  for (let o = 2 ** 32 - 5; o <= 2 ** 32 + 5; o++) {
    assert.ok((await s.reader.read(o, 3)).equals(expect.around4g.subarray(o - (2 ** 32 - 100), o - (2 ** 32 - 100) + 3)), `read(${o}, 3)`);
  }
  assert.ok((await s.reader.read(BIG_SIZE - 3, 3)).equals(Buffer.from('END')));
  assert.ok((await s.reader.read(BIG_SIZE - 1, 100)).equals(Buffer.from('D')));
  assert.equal((await s.reader.read(BIG_SIZE, 1)).length, 0);
  assert.ok((await s.reader.read(2999, 2)).equals(Buffer.concat([head.subarray(2999), expect.start.subarray(3000, 3001)])));
  assert.ok((await s.reader.read(4500000000 - 1, 2)).equals(Buffer.concat([expect.end.subarray(49, 50), tail.subarray(0, 1)])));
});

test('big-4g: reading 208 MB of the raw area in 16 MiB steps keeps RSS growth bounded', async (t) => {
  // GC is forced between steps so that RSS shows what the reader keeps (caches, read-ahead), not the
  // garbage V8 has not collected yet; the bound is the same for the sample taken before each GC.
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const s = await open(path.join(BIG, 'big-4g.jigdo'), [path.join(BIG, 'parts')]);
  const step = 16 << 20;
  let offset = 1 << 30;
  await s.reader.read(offset, step); // warm-up: workers, wasm, caches
  offset += step;
  gc();
  const base = process.memoryUsage.rss();
  let peak = base;
  for (let i = 0; i < 13; i++, offset += step) {
    const data = await s.reader.read(offset, step);
    assert.equal(data.length, step);
    // The big raw entry is a run of zeros (spec §2.3: "5,000 parts ... for a 4.5 GB zero run").
    if (i % 4 === 0) assert.equal(data.indexOf(1), -1);
    peak = Math.max(peak, process.memoryUsage.rss());
    gc();
    peak = Math.max(peak, process.memoryUsage.rss());
  }
  const growth = (peak - base) / 2 ** 20;
  t.diagnostic(`RSS ${(base / 2 ** 20).toFixed(0)} MiB before, peak growth ${growth.toFixed(0)} MiB`);
  assert.ok(growth < 150, `RSS grew by ${growth.toFixed(0)} MiB while streaming 208 MiB`);
});

test('big-4g: the same ranges as jigdo-file make-image --image=- streams them', async (t) => {
  const r = await bigStream;
  if (r.skipped) {
    t.skip(r.skipped);
    return;
  }
  t.diagnostic(`jigdo-file streamed ${r.total} bytes in ${r.ms} ms`);
  assert.equal(r.total, BIG_SIZE);
  const s = await open(path.join(BIG, 'big-4g.jigdo'), [path.join(BIG, 'parts')]);
  for (const [i, [a, b]] of BIG_RANGES.entries()) {
    assert.ok((await s.reader.read(a, b - a)).equals(r.ranges[i]!), `range ${a}..${b}`);
  }
});
