import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { PartCache } from '../../src/cache/part-cache.js';
import { WorkerPool } from '../../src/util/worker-pool.js';

const pool = new WorkerPool();
const hashFile = (file: string, kind: 'md5' | 'sha256'): Promise<Buffer> => pool.hashFile(file, kind);

test('a lock is released when the temporary file cannot be created (no later waiter hangs)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-lock-'));
  const cache = new PartCache({ dir, hashFile });
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
  await rm(dir, { recursive: true, force: true });
});

test('a cache directory removed while in use is made again for the next part', async () => {
  // Directories are made once per process; removing them behind its back must not break later fetches.
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-gone-'));
  const cache = new PartCache({ dir, hashFile });
  const store = async (text: string) => {
    const bytes = Buffer.from(text);
    const md5 = createHash('md5').update(bytes).digest();
    const begun = await cache.begin('parts', 'md5', md5.toString('hex'));
    assert.ok('writer' in begun);
    await begun.writer.fh.write(bytes, 0, bytes.length, 0);
    const copy = await begun.writer.commit([['md5', md5]]);
    assert.ok(copy, `${text} committed`);
    assert.equal(await readFile(copy.path, 'utf8'), text);
  };
  try {
    await store('first part');
    await rm(dir, { recursive: true, force: true });
    await store('second part');
    await rm(path.join(dir, 'parts'), { recursive: true, force: true });
    await store('third part');
  } finally {
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('begin never makes a second writer: a file already cached, or committed by the process it waited for, is handed out', async () => {
  // begin's first try goes straight to the lock (its callers have just missed the file): the lookup under the
  // lock, and the one after each wait, must still find what is there.
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-begin-'));
  const bytes = Buffer.from('a part that two processes want');
  const md5 = createHash('md5').update(bytes).digest();
  const hex = md5.toString('hex');
  const known: ['md5', Buffer] = ['md5', md5]; // hashed as written: no worker needed
  const first = new PartCache({ dir, hashFile });
  const second = new PartCache({ dir, hashFile }); // another process on the same cache (its own locks)
  try {
    const begun = await first.begin('parts', 'md5', hex);
    assert.ok('writer' in begun);
    await begun.writer.allocate(bytes.length);
    await begun.writer.fh.write(bytes, 0, bytes.length, 0);
    let waits = 0;
    let sawWait!: () => void;
    const waitSeen = new Promise<void>((r) => (sawWait = r));
    const waiting = second.begin('parts', 'md5', hex, () => {
      waits++;
      sawWait();
    });
    // The second one is waiting for the first one's lock: its onWait says so (a fixed 60 ms sleep was not enough on a
    // loaded machine, when its begin had not reached the lock before the commit released it: no wait, waits 0).
    const outcome = await Promise.race([waitSeen.then(() => 'waiting' as const), waiting.then(() => 'returned' as const)]);
    assert.equal(outcome, 'waiting', 'the second begin waits for the first one\'s lock');
    const committed = await begun.writer.commit([known], known);
    assert.ok(committed);
    const got = await waiting;
    assert.ok('copy' in got, 'the waiter takes the committed file instead of writing it again');
    assert.equal(got.copy.path, committed.path);
    assert.equal(waits, 1);
    const again = await second.begin('parts', 'md5', hex);
    assert.ok('copy' in again, 'a file already in the cache');
    // A commit resolves before its batch has written the count and let go of the size lock (cache-eviction.ts
    // queued): each process's close waits for that.
    await Promise.all([first.close(), second.close()]);
    assert.deepEqual(await readdir(path.join(dir, 'parts', 'locks')), [], 'no lock left behind');
    // The size given to allocate is what the commit counted (it no longer asks the file).
    assert.equal((await first.refreshStats()).bytes, bytes.length);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('endWrites: waits for a download that ends by itself, aborts one that does not, and refuses new ones; nothing is left', async () => {
  // The network's close cuts the downloads; a daemon exits once it returns (the soak test found their files left).
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-end-'));
  const cache = new PartCache({ dir, hashFile });
  const left = async () => [...(await readdir(path.join(dir, 'parts', 'tmp'))).filter((f) => f.endsWith('.partial')), ...(await readdir(path.join(dir, 'parts', 'locks')))];
  try {
    const quick = await cache.begin('parts', 'md5', 'ab'.repeat(16));
    const hung = await cache.begin('parts', 'md5', 'cd'.repeat(16));
    assert.ok('writer' in quick && 'writer' in hung);
    assert.equal((await left()).length, 4, 'two temporary files, two locks');
    let quickDone = false;
    setTimeout(() => void quick.writer.abort().then(() => (quickDone = true)), 100);
    const t0 = Date.now();
    await cache.endWrites(600);
    assert.ok(quickDone, 'the download that ended by itself was waited for');
    assert.ok(Date.now() - t0 >= 550, 'the one that did not was given the whole wait');
    assert.deepEqual(await left(), [], 'and aborted then');
    await hung.writer.abort(); // its owner's own abort, late: nothing more to do
    await assert.rejects(cache.begin('parts', 'md5', 'ef'.repeat(16)), /the cache is closing/);
    assert.deepEqual(await left(), []);
  } finally {
    await cache.close();
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a process that exits with a download open (process.exit, as a daemon after its unmount) leaves neither its temporary file nor its lock', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-exit-'));
  const module = new URL('../../src/cache/part-cache.ts', import.meta.url).href;
  const script = `
    const { PartCache } = await import(${JSON.stringify(module)});
    const cache = new PartCache({ dir: ${JSON.stringify(dir)}, hashFile: async () => Buffer.alloc(16) });
    const begun = await cache.begin('parts', 'md5', '${'ab'.repeat(16)}');
    if (!('writer' in begun)) process.exit(3);
    await begun.writer.fh.write(Buffer.from('half a part'));
    process.exit(0);`;
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(await readdir(path.join(dir, 'parts', 'tmp')), [], 'no temporary file, no lock inode');
    assert.deepEqual(await readdir(path.join(dir, 'parts', 'locks')), [], 'no lock');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('endWrites leaves a download whose commit runs to that commit: the part is committed (the forced abort closed its file under it)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-end-commit-'));
  const bytes = Buffer.from('a part being committed');
  const md5 = createHash('md5').update(bytes).digest();
  let hashed!: () => void;
  const slowHash = (): Promise<Buffer> => new Promise((resolve) => (hashed = () => resolve(md5)));
  const cache = new PartCache({ dir, hashFile: slowHash });
  try {
    const begun = await cache.begin('parts', 'md5', md5.toString('hex'));
    assert.ok('writer' in begun);
    await begun.writer.fh.write(bytes, 0, bytes.length, 0);
    const committed = begun.writer.commit([['md5', md5]]);
    await new Promise((r) => setTimeout(r, 20)); // the commit waits for its hash
    await cache.endWrites(50); // the wait ends with the commit still running
    hashed();
    const copy = await committed;
    assert.ok(copy, 'committed');
    assert.equal(await readFile(copy.path, 'utf8'), 'a part being committed');
  } finally {
    await cache.close();
    await rm(dir, { recursive: true, force: true });
  }
});
