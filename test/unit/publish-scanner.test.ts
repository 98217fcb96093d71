/** publish/scanner.ts: candidate files' sums, read in batches on the scan workers, only from regular files. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CandidateSums, Scanner } from '../../src/publish/scanner.js';
import { rsyncSum64 } from '../../src/format/rsync.js';
import { encodeB64 } from '../../src/format/base64.js';

let work: string;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-scanner-'));
});
after(() => rm(work, { recursive: true, force: true }));

test('a candidate swapped for a FIFO after the listing is an error for that file, not a worker waiting for good', async () => {
  const fifo = path.join(work, 'late');
  execFileSync('mkfifo', [fifo]);
  const scanner = new Scanner(1);
  try {
    const sums = scanner.fileSums([{ path: fifo, size: 5000 }], 'md5', 1024);
    const hung = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the scan worker waited on the FIFO')), 10_000).unref());
    const [got] = await Promise.race([sums, hung]);
    assert.ok(got instanceof Error);
    assert.match(got.message, /FIFO/);
  } finally {
    await scanner.close();
  }
});

test('a batch gives each file its own sums, whether read once (small) or twice (past the head), and its own errors', async () => {
  const small = randomBytes(1100);
  const large = Buffer.concat([Buffer.alloc(3000), randomBytes(200_000)]); // longer than the 64 KiB head; begins with zeros
  await writeFile(path.join(work, 'small'), small);
  await writeFile(path.join(work, 'large'), large);
  const scanner = new Scanner(1);
  try {
    const got = await scanner.fileSums(
      [
        { path: path.join(work, 'small'), size: small.length },
        { path: path.join(work, 'gone'), size: 10 },
        { path: path.join(work, 'large'), size: large.length },
        { path: path.join(work, 'small'), size: small.length + 1 }, // shorter than listed
        { path: path.join(work, 'large'), size: 5000, ranges: [{ offset: 3000, length: 2000 }, { offset: 100_000, length: 3000 }] },
      ],
      'md5',
      1024,
    );
    const expect = (bytes: Buffer) => ({
      rsync: rsyncSum64(bytes.subarray(0, 1024)),
      head: createHash('sha256').update(bytes.subarray(0, 64 * 1024)).digest(),
      confirm: createHash('sha256').update(bytes).digest(),
      sum: createHash('md5').update(bytes).digest(),
      zeros: bytes.findIndex((b) => b !== 0),
    });
    const fields = (s: CandidateSums | Error | undefined) => {
      assert.ok(s instanceof CandidateSums);
      assert.deepEqual(s.encoded(), { rsync: encodeB64(s.rsync), head: encodeB64(s.head), confirm: encodeB64(s.confirm), sum: encodeB64(s.sum) });
      return { rsync: s.rsync, head: s.head, confirm: s.confirm, sum: s.sum, zeros: s.zeros };
    };
    assert.deepEqual(fields(got[0]), expect(small));
    assert.match((got[1] as Error).message, /ENOENT/);
    assert.deepEqual(fields(got[2]), expect(large));
    assert.match((got[3] as Error).message, /shorter than when it was listed/);
    assert.deepEqual(fields(got[4]), expect(Buffer.concat([large.subarray(3000, 5000), large.subarray(100_000, 103_000)])));
  } finally {
    await scanner.close();
  }
});
