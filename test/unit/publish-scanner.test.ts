/** publish/scanner.ts: a candidate's sums are read only from a regular file. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Scanner } from '../../src/publish/scanner.js';

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
    const sums = scanner.fileSums(fifo, 5000, 'md5', 1024);
    const hung = new Promise((_, reject) => setTimeout(() => reject(new Error('the scan worker waited on the FIFO')), 10_000).unref());
    await assert.rejects(Promise.race([sums, hung]), /FIFO/);
  } finally {
    await scanner.close();
  }
});
