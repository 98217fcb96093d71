/** cache/cache-fs.ts: the cache's metadata calls, synchronous on a local disk while they are fast, through the pool else. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CacheFs, SLOW_CALL_MS } from '../../src/cache/cache-fs.js';

let work: string;
before(async () => {
  // tmpfs where there is one: a local disk file system on every Linux machine, whatever /tmp is.
  work = await mkdtemp(path.join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'jigdofs-cache-fs-'));
});
after(() => rm(work, { recursive: true, force: true }));

test('on a local disk the calls go synchronously once the file system is known, and still answer as fs/promises does', async () => {
  // A clock that never moves: no call counts as slow here, however loaded the machine (the next test times them).
  const fs = new CacheFs(path.join(work, 'cache-not-made-yet'), () => 0);
  assert.equal(fs.synchronous, false, 'through the pool until the file system is known');
  await fs.ready;
  assert.equal(fs.synchronous, true);
  const file = path.join(work, 'a');
  await writeFile(file, 'part');
  await fs.link(file, path.join(work, 'b'));
  await fs.rename(path.join(work, 'b'), path.join(work, 'c'));
  await fs.utimes(file, 1_000_000, 2_000_000);
  assert.equal((await fs.stat(file)).mtimeMs, 2_000_000_000);
  assert.deepEqual((await fs.readdir(work)).sort(), ['a', 'c']);
  await fs.unlink(path.join(work, 'c'));
  // A failure is a rejected promise, never a throw from the call itself (callers chain .catch on it).
  const missing = path.join(work, 'missing');
  let pending: Promise<unknown> | undefined;
  assert.doesNotThrow(() => (pending = fs.stat(missing)));
  await assert.rejects(pending!, { code: 'ENOENT' });
  await assert.rejects(fs.link(file, path.join(work, 'a')), { code: 'EEXIST' });
  assert.equal(fs.synchronous, true);
});

test('one call slower than SLOW_CALL_MS sends every later one through the pool', async () => {
  let clock = 0;
  // Each reading of this clock is SLOW_CALL_MS + 1 ms after the one before: every timed call looks slow.
  const fs = new CacheFs(work, () => (clock += SLOW_CALL_MS + 1));
  await fs.ready;
  assert.equal(fs.synchronous, true);
  await writeFile(path.join(work, 'slow'), 'x');
  assert.equal((await fs.stat(path.join(work, 'slow'))).size, 1, 'the slow call itself answers');
  assert.equal(fs.synchronous, false);
  const readings = clock;
  assert.equal((await fs.stat(path.join(work, 'slow'))).size, 1);
  assert.equal(clock, readings, 'later calls are not timed: they went through the pool');
});

test('a file system not known to be a local disk (procfs here) never gets synchronous calls', async () => {
  const fs = new CacheFs('/proc/self');
  await fs.ready;
  assert.equal(fs.synchronous, false);
  assert.ok((await readdir('/proc/self')).includes('status'));
  assert.ok((await fs.readdir('/proc/self')).includes('status'));
});
