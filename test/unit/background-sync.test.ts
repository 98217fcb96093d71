/** The cache's background syncs of unhashed parts (cache/background-sync.ts): flush waits for all, and names the failures. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
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

test('writers\' descriptors handed over are synced and closed, also beyond the 64 kept open; a failed close counts as a failed sync', async () => {
  const failures: string[] = [];
  const sync = new BackgroundSync(async (file) => void failures.push(file));
  const handles = await Promise.all(
    Array.from({ length: 70 }, async (_, i) => {
      const file = path.join(work, `h${i}`);
      const fh = await open(file, 'w');
      await fh.write(Buffer.alloc(4096, i));
      return { file, fh };
    }),
  );
  // The last one's close fails, as NFS reports a write that failed at close.
  const last = handles.at(-1)!;
  const close = last.fh.close.bind(last.fh);
  last.fh.close = async () => {
    await close();
    throw Object.assign(new Error('EIO: i/o error, close'), { code: 'EIO' });
  };
  for (const { file, fh } of handles) sync.add(file, fh);
  assert.deepEqual([...(await sync.flush())], [last.file]);
  assert.deepEqual(failures, [last.file], 'handed to onFailure (the cache removes it)');
  for (const { fh } of handles) assert.equal(fh.fd, -1, 'closed');
});

test('whenSynced waits for the file\'s own sync only: at once for a file not added, after its datasync for one that is', async () => {
  const sync = new BackgroundSync();
  await sync.whenSynced(path.join(work, 'never-added')); // resolves at once
  const file = path.join(work, 'slow');
  const fh = await open(file, 'w');
  await fh.write(Buffer.alloc(4096, 1));
  // A datasync held until released, so the order of events is the test's.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const datasync = fh.datasync.bind(fh);
  fh.datasync = async () => {
    await held;
    await datasync();
  };
  sync.add(file, fh);
  let synced = false;
  const waiting = sync.whenSynced(file).then(() => (synced = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(synced, false, 'not before its sync ends');
  release();
  await waiting;
  assert.equal(fh.fd, -1, 'its sync (and the close after it) is over');
  await sync.whenSynced(file); // and at once afterwards
});
