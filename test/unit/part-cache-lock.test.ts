import assert from 'node:assert/strict';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { PartCache } from '../../src/sources/part-cache.js';

test('a lock is released when the temporary file cannot be created (no later waiter hangs)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-lock-'));
  const cache = new PartCache({ dir });
  const hex = 'ab'.repeat(16);
  const orig = cache.tempFile.bind(cache);
  cache.tempFile = () => Promise.reject(new Error('EMFILE: too many open files'));
  await assert.rejects(cache.begin('parts', 'md5', hex), /EMFILE/);
  assert.deepEqual(await readdir(path.join(dir, 'parts', 'locks')), []);
  cache.tempFile = orig;
  const started = await Promise.race([
    cache.begin('parts', 'md5', hex),
    new Promise<'hang'>((r) => setTimeout(() => r('hang'), 2000).unref()),
  ]);
  assert.notEqual(started, 'hang');
  assert.ok(typeof started === 'object' && 'writer' in started);
  await started.writer.abort();
});
