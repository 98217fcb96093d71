/**
 * A part made of several ranges of a file (a file inside a disc image, issue 10): verified over its ranges in
 * order, recorded in the hash index apart from a plain region with the same start and length, read back
 * through the ranges (copyRuns), and refused when the ranges do not fit the file.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { checksumKey, type ChecksumKind } from '../../src/format/checksum.js';
import { HashIndex } from '../../src/sources/hash-index.js';
import { copyRuns, verifyLocalCopy, type HashFile } from '../../src/sources/verified-copy.js';
import { WorkerPool } from '../../src/util/worker-pool.js';
import type { FileRange } from '../../src/util/worker-protocol.js';

let work: string;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-ranges-'));
});
after(() => rm(work, { recursive: true, force: true }));

const md5 = (b: Buffer): Buffer => createHash('md5').update(b).digest();

let pool: WorkerPool;
before(() => {
  pool = new WorkerPool(1);
});
after(() => pool.close());

/** The worker pool's hash (its hashRanges for a range list), counting its calls. */
function rangeHash(): { calls: number; hash: HashFile } {
  const h = {
    calls: 0,
    hash: (file: string, kind: ChecksumKind, offset?: number, length?: number, ranges?: FileRange[]): Promise<Buffer> => {
      h.calls++;
      return pool.hashFile(file, kind, offset, length, ranges);
    },
  };
  return h;
}

test('a fragmented part: verified over its ranges, kept apart from the plain region of the same start and length', async () => {
  const file = path.join(work, 'image.bin');
  const blocks = [Buffer.alloc(2048, 1), Buffer.alloc(2048, 2), Buffer.alloc(2048, 3)];
  await writeFile(file, Buffer.concat(blocks));
  // The part is block 1 then block 0 (a fragmented file); the plain region at 2048 of 4096 bytes is block 1, 2.
  const ranges = [{ offset: 2048, length: 2048 }, { offset: 0, length: 2048 }];
  const part = Buffer.concat([blocks[1]!, blocks[0]!]);
  const key = checksumKey(md5(part));
  const index = await HashIndex.load(undefined);
  const h = rangeHash();
  const found = await verifyLocalCopy(index, h.hash, 'md5', { file, offset: 2048, length: 4096, whole: false, ranges }, key);
  assert.ok(found?.copy);
  assert.deepEqual(found.copy.ranges, ranges);
  const region = await verifyLocalCopy(index, h.hash, 'md5', { file, offset: 2048, length: 4096, whole: false }, key);
  assert.equal(region?.copy, undefined, 'the plain region holds other bytes: the range list\'s checksum must not answer for it');
  assert.equal(h.calls, 2);
  const again = await verifyLocalCopy(index, h.hash, 'md5', { file, offset: 2048, length: 4096, whole: false, ranges }, key);
  assert.ok(again?.copy && !again.hashed, 'known from the index the second time');
  const runs = copyRuns(found.copy, 1000, 2000);
  assert.deepEqual(runs, [{ position: 3048, length: 1048, at: 0 }, { position: 0, length: 952, at: 1048 }]);
  assert.throws(() => copyRuns(found.copy!, 4000, 200), /beyond the part's ranges/);
});

test('ranges that do not fit the file (beyond its end, not adding up, not starting at offset) are not even hashed', async () => {
  const file = path.join(work, 'small.bin');
  await writeFile(file, Buffer.alloc(4096, 9));
  const index = await HashIndex.load(undefined);
  const h = rangeHash();
  const bad: FileRange[][] = [
    [{ offset: 2048, length: 4096 }],
    [{ offset: 0, length: 2048 }, { offset: 2048, length: 1000 }],
    [{ offset: 0, length: -1 }, { offset: 0, length: 4097 }],
  ];
  for (const ranges of bad) {
    assert.equal(await verifyLocalCopy(index, h.hash, 'md5', { file, offset: ranges[0]!.offset, length: 4096, whole: false, ranges }, 'x'), undefined);
  }
  assert.equal(await verifyLocalCopy(index, h.hash, 'md5', { file, offset: 1, length: 2048, whole: false, ranges: [{ offset: 0, length: 2048 }] }, 'x'), undefined);
  assert.equal(h.calls, 0);
});
