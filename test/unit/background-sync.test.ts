/** The cache's background syncs of unhashed parts (cache/background-sync.ts): flush waits for all, and names the failures. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BackgroundSync } from '../../src/cache/background-sync.js';

let work: string;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-bgsync-'));
});
after(() => rm(work, { recursive: true, force: true }));

test('flush waits for every file added before it and names those that could not be synced', async () => {
  const sync = new BackgroundSync();
  assert.equal((await sync.flush()).size, 0, 'nothing added: nothing to wait for');
  const files = await Promise.all(
    Array.from({ length: 10 }, async (_, i) => {
      const file = path.join(work, `f${i}`);
      await writeFile(file, Buffer.alloc(64 << 10, i));
      return file;
    }),
  );
  const gone = path.join(work, 'gone'); // removed before its turn (evicted, or claimed by another process)
  for (const f of [...files.slice(0, 5), gone, ...files.slice(5)]) sync.add(f);
  const failed = await sync.flush();
  assert.deepEqual([...failed], [gone]);
  // Added after a flush: the next flush waits for it too.
  sync.add(path.join(work, 'gone-too'));
  assert.deepEqual([...(await sync.flush())].sort(), [gone, path.join(work, 'gone-too')].sort());
});
