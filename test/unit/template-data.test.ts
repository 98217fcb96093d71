// The template's raw stream (src/sources/template-data.ts) for chunks inflated whole in memory: the bytes read
// back are the deflated ones, and a chunk whose stream is longer or shorter than its part header claims is a
// JigdoError naming the template and the raw-data part, whatever zlib's output buffer size. Chunks over
// SPILL_THRESHOLD are inflated once into a spill file, synced before it gets the name later runs take it by.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { BufferByteSource } from '../../src/format/bytesource.js';
import { JigdoError } from '../../src/format/errors.js';
import { parseTemplate, type RawChunk, type TemplateInfo } from '../../src/format/template.js';
import { SAMPLES } from '../helpers/cli.js';
import { SPILL_THRESHOLD, TemplateData } from '../../src/sources/template-data.js';
import { WorkerPool } from '../../src/util/worker-pool.js';

const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-template-data-'));
const pool = new WorkerPool(1);
after(async () => {
  await pool.close();
  rmSync(work, { recursive: true, force: true });
});

/**
 * A template whose raw stream is the given chunks, each zlib data claiming `claimed` bytes (default: its real
 * size). Only what TemplateData reads is filled in: the payloads' places, the claimed sizes, the raw length.
 */
function rawStream(chunks: Array<{ bytes: Buffer; claimed?: number }>, spillDir = path.join(work, 'spill'), memoryLimit = 64 << 20): TemplateData {
  const payloads: Buffer[] = [];
  const raw: RawChunk[] = [];
  let fileAt = 0;
  let rawAt = 0;
  chunks.forEach(({ bytes, claimed = bytes.length }, index) => {
    const payload = deflateSync(bytes);
    fileAt += 16; // the part header, not read by TemplateData
    payloads.push(Buffer.alloc(16), payload);
    raw.push({ index, compression: 'zlib', payloadOffset: fileAt, payloadLength: payload.length, uncompressedLength: claimed, rawStart: rawAt });
    fileAt += payload.length;
    rawAt += claimed;
  });
  const info = { name: 'test.template', chunks: raw, desc: { rawLength: rawAt } } as unknown as TemplateInfo;
  const src = new BufferByteSource('test.template', Buffer.concat(payloads));
  return new TemplateData(src, info, { memoryLimit, spillDir, pool });
}

test('chunks inflated whole read back exactly, across chunk boundaries, for every size class', async () => {
  // Random bytes, which deflate does not shrink; sizes at, past and far beyond zlib's default 16 KiB output piece.
  const chunks = [randomBytes(1), randomBytes(16384), randomBytes(16385), randomBytes(3 << 20), Buffer.alloc(0), randomBytes(70_000)];
  const whole = Buffer.concat(chunks);
  const data = rawStream(chunks.map((bytes) => ({ bytes })));
  try {
    const all = Buffer.alloc(whole.length);
    await data.readInto(0, whole.length, all, 0);
    assert.ok(all.equals(whole));
    const across = Buffer.alloc(40_000);
    const from = 1 + 16384 + 16385 - 20_000;
    await data.readInto(from, across.length, across, 0);
    assert.ok(across.equals(whole.subarray(from, from + across.length)));
  } finally {
    await data.close();
  }
});

test('a chunk that inflates to more bytes than its header claims is a JigdoError naming the template and the part, and saying so', async () => {
  // (It said "corrupt zlib data (Cannot create a Buffer larger than 40001 bytes)": zlib's limit, not what is wrong.)
  const big = hugeChunk();
  for (const [chunks, part, claimed, at] of [
    [[{ bytes: randomBytes(1000) }, { bytes: randomBytes(50_000), claimed: 40_000 }], 2, 40_000, 1000],
    [[{ bytes: big, claimed: big.length - 1 }], 1, big.length - 1, big.length - 11], // (spilled to a file as it inflates)
  ] as const) {
    const data = rawStream([...chunks], path.join(work, `past-${part}`));
    try {
      await assert.rejects(data.readInto(at, 10, Buffer.alloc(10), 0), (err: unknown) => {
        assert.ok(err instanceof JigdoError, String(err));
        assert.match(err.message, new RegExp(`test\\.template.*raw-data part ${part}: decompresses to more than the ${claimed} bytes its part header says$`));
        return true;
      });
    } finally {
      await data.close();
    }
  }
});

test('a BZIP part that decompresses to more than its header says: said so (it was BZ_OUTBUFF_FULL)', async () => {
  const bytes = readFileSync(path.join(SAMPLES, 'jf-sha256-bzip2.template'));
  const src = new BufferByteSource('b.template', bytes);
  const info = await parseTemplate(src);
  const first = info.chunks[0]!;
  assert.equal(first.compression, 'bzip2');
  const claimed = first.uncompressedLength - 1;
  const lying = { ...info, chunks: [{ ...first, uncompressedLength: claimed }], desc: { ...info.desc, rawLength: claimed } } as TemplateInfo;
  const data = new TemplateData(src, lying, { memoryLimit: 64 << 20, spillDir: path.join(work, 'bz-past'), pool });
  try {
    await assert.rejects(data.readInto(0, 10, Buffer.alloc(10), 0), new RegExp(`b\\.template.*raw-data part 1: decompresses to more than the ${claimed} bytes its part header says$`));
  } finally {
    await data.close();
  }
});

test('a chunk that inflates to fewer bytes than its header claims is a JigdoError naming the template and the part', async () => {
  const data = rawStream([{ bytes: randomBytes(30_000), claimed: 30_001 }]);
  try {
    await assert.rejects(data.readInto(0, 10, Buffer.alloc(10), 0), (err: unknown) => {
      assert.ok(err instanceof JigdoError, String(err));
      assert.match(err.message, /test\.template.*raw-data part 1: decompressed to 30000 bytes instead of 30001/);
      return true;
    });
  } finally {
    await data.close();
  }
});

/** A chunk just over SPILL_THRESHOLD: zeros (left as holes in the spill file) with random 64 KiB pieces in places. */
function hugeChunk(): Buffer {
  const bytes = Buffer.alloc(SPILL_THRESHOLD + (1 << 20));
  for (const at of [0, 5 << 20, 11 << 20, SPILL_THRESHOLD]) randomBytes(64 << 10).copy(bytes, at);
  return bytes;
}

/** The spill of chunk 0, once it exists (TemplateData keeps it private). */
function spillOf(data: TemplateData): { handle: FileHandle; done: boolean } | undefined {
  return (data as unknown as { spills: Map<number, { handle: FileHandle; done: boolean }> }).spills.get(0);
}

test('readers that come at once while a huge chunk starts to spill share one pass over it, and read it right', async () => {
  const bytes = hugeChunk();
  const data = rawStream([{ bytes }], mkdtempSync(path.join(work, 'spill-')));
  try {
    const at = [0, 5 << 20, 11 << 20, SPILL_THRESHOLD];
    const bufs = at.map(() => Buffer.alloc(64 << 10));
    await Promise.all(at.map((o, i) => data.readInto(o, bufs[i]!.length, bufs[i]!, 0)));
    at.forEach((o, i) => assert.ok(bufs[i]!.equals(bytes.subarray(o, o + bufs[i]!.length)), `at ${o}`));
    assert.equal(data.stats.bytesInflated, bytes.length, 'one pass');
  } finally {
    await data.close();
  }
});

test("a finished spill is taken only for the same compressed bytes: another template's chunk of that size is not served", async () => {
  const dir = mkdtempSync(path.join(work, 'spill-'));
  const [hostile, real] = [hugeChunk(), hugeChunk()];
  const first = rawStream([{ bytes: hostile }], dir);
  try {
    const tail = Buffer.alloc(64 << 10);
    await first.readInto(SPILL_THRESHOLD, tail.length, tail, 0);
    for (let i = 0; i < 500 && !spillOf(first)?.done; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(spillOf(first)?.done, true, 'the first spill is finished and named');
  } finally {
    await first.close();
  }
  const second = rawStream([{ bytes: real }], dir); // same chunk index and size, same folder
  try {
    const got = Buffer.alloc(64 << 10);
    await second.readInto(0, got.length, got, 0);
    assert.ok(got.equals(real.subarray(0, got.length)), "the other template's spill was served");
  } finally {
    await second.close();
  }
});

test('a chunk larger than the memory LRU (a small --memory) is spilled, not inflated again for every read', async () => {
  const bytes = Buffer.alloc(12 << 20);
  randomBytes(64 << 10).copy(bytes, 5 << 20);
  const data = rawStream([{ bytes }], mkdtempSync(path.join(work, 'spill-')), 8 << 20);
  try {
    for (const at of [0, 5 << 20, 11 << 20, 5 << 20]) {
      const got = Buffer.alloc(64 << 10);
      await data.readInto(at, got.length, got, 0);
      assert.ok(got.equals(bytes.subarray(at, at + got.length)), `at ${at}`);
    }
    assert.equal(data.stats.bytesInflated, bytes.length, 'inflated once');
  } finally {
    await data.close();
  }
});

test('a spill whose sync fails never gets the name a later run would take it by', async () => {
  const dir = mkdtempSync(path.join(work, 'spill-'));
  const bytes = hugeChunk();
  const data = rawStream([{ bytes }], dir);
  try {
    const first = Buffer.alloc(10);
    await data.readInto(0, 10, first, 0); // the spill has begun (its first bytes are in)
    assert.ok(first.equals(bytes.subarray(0, 10)));
    const spill = spillOf(data)!;
    spill.handle.datasync = () => Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    // (The temporary file goes right after the spill is dropped: both are waited for.)
    for (let i = 0; i < 500 && !spill.done && (spillOf(data) === spill || readdirSync(dir).length > 0); i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(spillOf(data), undefined, 'the failed spill is dropped (the next read tries again)');
    assert.deepEqual(readdirSync(dir), [], 'neither a final nor a temporary spill file');
  } finally {
    await data.close();
  }
  // A later run inflates it again and reads it right.
  const again = rawStream([{ bytes }], dir);
  try {
    const last = Buffer.alloc(64 << 10);
    await again.readInto(SPILL_THRESHOLD, last.length, last, 0);
    assert.ok(last.equals(bytes.subarray(SPILL_THRESHOLD, SPILL_THRESHOLD + last.length)));
    assert.equal(again.stats.bytesInflated, bytes.length);
  } finally {
    await again.close();
  }
});
