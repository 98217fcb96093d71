// WorkerPool.close (src/util/worker-pool.ts): a pool is now made per command or per session and closed
// with it, so requests still in flight at close (a command that failed half-way) must end as they would
// have, never as "worker thread exited" rejections that nobody handles.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WorkerPool } from '../../src/util/worker-pool.js';

const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-pool-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('close waits for the requests in flight, then ends the workers', async () => {
  const data = randomBytes(8 << 20);
  const file = path.join(work, 'data.bin');
  writeFileSync(file, data);
  const pool = new WorkerPool(2);
  const hashes = [pool.hashFile(file, 'md5'), pool.hashFile(file, 'sha256')];
  const stream = pool.streamHash('md5');
  const update = stream.update(data.subarray(0, 1 << 20));
  await pool.close();
  const [md5, sha256] = await Promise.all(hashes);
  assert.equal(md5!.toString('hex'), createHash('md5').update(data).digest('hex'));
  assert.equal(sha256!.toString('hex'), createHash('sha256').update(data).digest('hex'));
  assert.equal(await update, null);
});

test('a closed pool with nothing in flight closes at once, and twice', async () => {
  const pool = new WorkerPool(1);
  await pool.close();
  await pool.close();
});

test('warm starts one thread, and the next request runs on it instead of starting another', async () => {
  const file = path.join(work, 'warm.bin');
  writeFileSync(file, randomBytes(1 << 20));
  const pool = new WorkerPool(2);
  const threads = () => (pool as unknown as { workers: unknown[] }).workers.length;
  try {
    pool.warm();
    pool.warm();
    assert.equal(threads(), 1);
    await pool.hashFile(file, 'md5');
    assert.equal(threads(), 1, 'an idle warmed thread takes the request');
    await Promise.all([pool.hashFile(file, 'md5'), pool.hashFile(file, 'sha256')]);
    assert.equal(threads(), 2, 'a busy one does not: a second thread starts, up to the size');
  } finally {
    await pool.close();
  }
});
