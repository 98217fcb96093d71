/**
 * The cache's lock protocol (src/cache/cache-lock.ts): when a lock is stale and taken over, when it is
 * respected, that a held lock keeps itself fresh, and what the once-per-process cleanup removes.
 */
import { after, before, test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { link, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CacheFs } from '../../src/cache/cache-fs.js';
import { CacheLocks, LOCK_STALE_MS, TMP_STALE_MS, lockIsStale } from '../../src/cache/cache-lock.js';
import { ownerDead, ownerTag } from '../../src/util/pid.js';

let work: string;
let dirs = 0;
/** A pid that ran on this host and has ended (and was reaped). */
let deadPid: number;

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-cache-lock-'));
  deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
});
after(() => rm(work, { recursive: true, force: true }));

async function newLocks(): Promise<{ locks: CacheLocks; lockDir: string; tmpDir: string }> {
  const dir = path.join(work, `${++dirs}`);
  const lockDir = path.join(dir, 'parts', 'locks');
  const tmpDir = path.join(dir, 'parts', 'tmp');
  await mkdir(lockDir, { recursive: true });
  await mkdir(tmpDir, { recursive: true });
  const inDir = <T>(_dir: string, op: () => Promise<T>): Promise<T> => op();
  const fs = new CacheFs(dir);
  await fs.ready; // its synchronous calls, where the file system allows them, as in a cache
  return { locks: new CacheLocks(dir, lockDir, tmpDir, inDir, () => undefined, fs), lockDir, tmpDir };
}

/** Sets a file's mtime (and atime) `ageMs` into the past. */
async function age(file: string, ageMs: number): Promise<void> {
  const t = (Date.now() - ageMs) / 1000;
  await utimes(file, t, t);
}

/** A host tag that is not ours (a lock written by a process of another machine sharing the cache). */
function otherHostTag(pid: number): string {
  const ours = ownerTag(pid);
  return (ours[0] === 'a' ? 'b' : 'a') + ours.slice(1);
}

test('owners: a pid of this host that ended is dead; a live one, or one of another host, is not', () => {
  assert.equal(ownerDead(`${ownerTag(deadPid)}-x`), true);
  assert.equal(ownerDead(`${ownerTag()}-x`), false);
  assert.equal(ownerDead(`${otherHostTag(deadPid)}-x`), false, 'another host: its pids mean nothing here');
  assert.equal(ownerDead('not-an-owner'), false);
});

test('staleness: gone, silent for LOCK_STALE_MS, or written by a dead process; not a fresh or half-written lock', async () => {
  const { lockDir } = await newLocks();
  const file = path.join(lockDir, 'x.lock');
  assert.equal(await lockIsStale(file), true, 'gone');
  await writeFile(file, `${ownerTag()}-${Date.now()}\n`);
  assert.equal(await lockIsStale(file), false, 'fresh, live owner');
  await age(file, LOCK_STALE_MS - 5000);
  assert.equal(await lockIsStale(file), false, 'refreshed not long ago');
  await age(file, LOCK_STALE_MS + 1000);
  assert.equal(await lockIsStale(file), true, 'silent too long, even with a live owner (stuck)');
  await writeFile(file, `${ownerTag(deadPid)}-${Date.now()}\n`);
  assert.equal(await lockIsStale(file), true, 'fresh, dead owner');
  await writeFile(file, `${otherHostTag(deadPid)}-${Date.now()}\n`);
  assert.equal(await lockIsStale(file), false, 'fresh, owner on another host');
  await writeFile(file, '');
  assert.equal(await lockIsStale(file), false, 'fresh and still empty: its owner is writing it');
});

test('tryLock: respects a live lock, takes over a stale one, and never takes its own twice', async () => {
  const { locks, lockDir } = await newLocks();
  const file = path.join(lockDir, 'parts-md5-ab.lock');
  await writeFile(file, `${otherHostTag(1)}-${Date.now()}\n`);
  assert.equal(await locks.tryLock('parts-md5-ab'), undefined, 'held by a live process elsewhere');
  await age(file, LOCK_STALE_MS + 1000);
  const taken = await locks.tryLock('parts-md5-ab');
  assert.ok(taken, 'silent owner: taken over');
  assert.match(await readFile(file, 'utf8'), new RegExp(`^${ownerTag()}-\\d+\\n$`), 'the lock now names us');
  assert.equal(await locks.tryLock('parts-md5-ab'), undefined, 'held by this process: a second fetch here waits');
  await taken.release();
  assert.deepEqual(await readdir(lockDir), [], 'released: removed');
  await writeFile(file, `${ownerTag(deadPid)}-${Date.now()}\n`);
  const again = await locks.tryLock('parts-md5-ab');
  assert.ok(again, 'dead owner: taken over at once');
  await again.release();
});

test('a lock set far in the future is stale; a stale lock that cannot be removed is named, not waited for without end', async () => {
  const { locks, lockDir } = await newLocks();
  const file = path.join(lockDir, 'parts-md5-cd.lock');
  await writeFile(file, `${otherHostTag(1)}-${Date.now()}\n`);
  await age(file, -3600_000); // an hour ahead: a host whose clock runs ahead, a clock put back
  assert.equal(await lockIsStale(file), true);
  const taken = await locks.tryLock('parts-md5-cd');
  assert.ok(taken, 'taken over');
  await taken.release();
  // A folder by the lock's name (unlink fails with EISDIR), as long gone as a stale lock.
  await mkdir(file);
  await age(file, LOCK_STALE_MS + 1000);
  await assert.rejects(locks.tryLock('parts-md5-cd'), new RegExp(`^Error: ${file.replace(/[.]/g, '\\.')}: a stale lock that cannot be removed \\(EISDIR\\): remove it by hand$`));
});

test('a held lock refreshes itself, so that waiters never find it stale', async () => {
  const { locks, lockDir } = await newLocks();
  mock.timers.enable({ apis: ['setInterval'] });
  try {
    const lock = await locks.tryLock('parts-md5-cd');
    assert.ok(lock);
    const file = path.join(lockDir, 'parts-md5-cd.lock');
    await age(file, LOCK_STALE_MS - 1000);
    mock.timers.tick(5_000);
    for (let i = 0; i < 100 && Date.now() - (await stat(file)).mtimeMs > 10_000; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(Date.now() - (await stat(file)).mtimeMs < 10_000, 'the heartbeat moved the mtime');
    assert.equal(await lockIsStale(file), false);
    await lock.release();
  } finally {
    mock.timers.reset();
  }
});

test('cleanup removes what dead or long-gone processes left, and nothing of live ones', async () => {
  const { locks, lockDir, tmpDir } = await newLocks();
  const tmp = (name: string): string => path.join(tmpDir, name);
  const lock = (name: string): string => path.join(lockDir, name);
  await writeFile(tmp(`${ownerTag(deadPid)}-aa.partial`), 'x');
  await writeFile(tmp(`${ownerTag()}-bb.partial`), 'x');
  await writeFile(tmp(`${otherHostTag(deadPid)}-cc.partial`), 'x');
  await writeFile(tmp(`${otherHostTag(deadPid)}-dd.partial`), 'x');
  await age(tmp(`${otherHostTag(deadPid)}-dd.partial`), TMP_STALE_MS + 60_000);
  await writeFile(lock('dead.lock'), `${ownerTag(deadPid)}-1\n`);
  await writeFile(lock('live.lock'), `${ownerTag()}-1\n`);
  await writeFile(lock('silent.lock'), `${otherHostTag(1)}-1\n`);
  await age(lock('silent.lock'), LOCK_STALE_MS + 1000);
  await locks.cleanOnce();
  assert.deepEqual((await readdir(tmpDir)).sort(), [`${ownerTag()}-bb.partial`, `${otherHostTag(deadPid)}-cc.partial`].sort());
  assert.deepEqual(await readdir(lockDir), ['live.lock']);
  await writeFile(tmp(`${ownerTag(deadPid)}-ee.partial`), 'x');
  await locks.cleanOnce();
  assert.ok((await readdir(tmpDir)).includes(`${ownerTag(deadPid)}-ee.partial`), 'once per process');
});

test('a lock is a hard link to the process\'s one lock inode: taking and releasing locks allocates and frees none', async () => {
  const { locks, lockDir, tmpDir } = await newLocks();
  const spare = path.join(tmpDir, `${ownerTag()}-lock.spare`);
  const a = await locks.tryLock('parts-md5-aa');
  const b = await locks.tryLock('size');
  assert.ok(a && b);
  const ino = (await stat(spare)).ino;
  for (const name of ['parts-md5-aa.lock', 'size.lock']) {
    const st = await stat(path.join(lockDir, name));
    assert.equal(st.ino, ino, `${name}: the same inode`);
    assert.match(await readFile(path.join(lockDir, name), 'utf8'), new RegExp(`^${ownerTag()}-\\d+\\n$`), 'it names us');
  }
  assert.equal((await stat(spare)).nlink, 3);
  await a.release();
  await b.release();
  assert.deepEqual(await readdir(lockDir), []);
  assert.equal((await stat(spare)).ino, ino, 'the inode stays for the next lock');
  // Another process's cleanup may remove the spare (it looks old): the next lock makes a new one.
  await rm(spare);
  const c = await locks.tryLock('parts-md5-cc');
  assert.ok(c);
  assert.equal((await stat(path.join(lockDir, 'parts-md5-cc.lock'))).ino, (await stat(spare)).ino);
  await c.release();
});

test('where hard links do not work, locks are created files as before', async () => {
  const { locks, lockDir, tmpDir } = await newLocks();
  await mkdir(path.join(tmpDir, `${ownerTag()}-lock.spare`)); // link(2) of a directory fails with EPERM
  const a = await locks.tryLock('parts-md5-dd');
  assert.ok(a);
  const st = await stat(path.join(lockDir, 'parts-md5-dd.lock'));
  assert.ok(st.isFile() && st.nlink === 1, 'a file of its own');
  assert.equal(await locks.tryLock('parts-md5-dd'), undefined);
  await a.release();
  assert.deepEqual(await readdir(lockDir), []);
});

test('a lock taken over while its holder was stopped is its new owner\'s: a release removes only its own lock', async () => {
  for (const links of [true, false]) {
    const { locks, lockDir, tmpDir } = await newLocks();
    if (!links) await mkdir(path.join(tmpDir, `${ownerTag()}-lock.spare`)); // created locks (see above)
    const file = path.join(lockDir, 'parts-md5-ee.lock');
    const lock = await locks.tryLock('parts-md5-ee');
    assert.ok(lock);
    // Another process (alive: our parent) found it stale while we were stopped, and took it over.
    const theirs = `${ownerTag(process.ppid)}-${Date.now()}\n`;
    await rm(file);
    await writeFile(file, theirs);
    await lock.release();
    assert.equal(await readFile(file, 'utf8').catch(() => 'removed'), theirs, `links ${links}: left to its owner (removed on the code before)`);
    // Our own lock under another inode (the lock inode was made again since it was linked): removed.
    await rm(file);
    const again = await locks.tryLock('parts-md5-ee');
    assert.ok(again);
    await rm(file);
    await writeFile(file, `${ownerTag()}-${Date.now()}\n`);
    await again.release();
    assert.deepEqual(await readdir(lockDir), [], `links ${links}`);
  }
});

test('a lock inode freed whose number another process\'s lock got is not taken for ours', async (t) => {
  const { locks, lockDir, tmpDir } = await newLocks();
  const file = path.join(lockDir, 'parts-md5-ff.lock');
  const lock = await locks.tryLock('parts-md5-ff');
  assert.ok(lock);
  const ours = (await stat(file)).ino;
  // The lock inode lost its own name (a cache's close; a cleanup, after a day stopped), and another process took the
  // lock over: the inode is freed. A third one makes its lock inode, and takes the lock.
  locks.removeSpare();
  await rm(file);
  const theirs = `${ownerTag(process.ppid)}-${Date.now()}\n`;
  const made: string[] = [];
  for (let i = 0; i < 16; i++) {
    const candidate = path.join(tmpDir, `other-${i}.spare`);
    await writeFile(candidate, theirs);
    made.push(candidate);
    if ((await stat(candidate)).ino === ours) break;
  }
  const reused = made.at(-1)!;
  if ((await stat(reused)).ino !== ours) return t.skip('this file system gave the freed inode number to none of 16 new files');
  await link(reused, file);
  await lock.release();
  assert.equal(await readFile(file, 'utf8').catch(() => 'removed'), theirs, 'the same number, another inode: left (removed on c9b4edf)');
});

test('a FIFO put at a held lock\'s name does not hang its release, and is not removed', { timeout: 20_000 }, async () => {
  const { locks, lockDir, tmpDir } = await newLocks();
  await mkdir(path.join(tmpDir, `${ownerTag()}-lock.spare`)); // a created lock: its release reads the name's text
  const file = path.join(lockDir, 'parts-md5-gg.lock');
  const lock = await locks.tryLock('parts-md5-gg');
  assert.ok(lock);
  await rm(file);
  assert.equal(spawnSync('mkfifo', [file]).status, 0);
  await lock.release(); // (its text is read through an O_NONBLOCK open that takes regular files only)
  assert.ok((await stat(file)).isFIFO(), 'not ours: left');
});

test('at the exit, a lock still held is removed, and one another process took over is not, nor a FIFO in a lock\'s place', async () => {
  const dir = path.join(work, `${++dirs}`);
  const lockDir = path.join(dir, 'parts', 'locks');
  const theirs = `${ownerTag(process.ppid)}-${Date.now()}\n`;
  const script = `import('${new URL('../../src/cache/cache-lock.ts', import.meta.url).href}').then(async (m) => {
    const fs = await import('node:fs');
    const locks = m.cacheDirLocks(${JSON.stringify(dir)});
    if (!(await locks.tryLock('held')) || !(await locks.tryLock('taken')) || !(await locks.tryLock('fifo'))) process.exit(3);
    const taken = ${JSON.stringify(path.join(lockDir, 'taken.lock'))};
    fs.rmSync(taken);
    fs.writeFileSync(taken, ${JSON.stringify(theirs)});
    const fifo = ${JSON.stringify(path.join(lockDir, 'fifo.lock'))};
    fs.rmSync(fifo);
    (await import('node:child_process')).execFileSync('mkfifo', [fifo]);
    process.exit(0);
  })`;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual((await readdir(lockDir)).sort(), ['fifo.lock', 'taken.lock'], 'the one still held is gone; a FIFO put in its place hung nothing');
  assert.equal(await readFile(path.join(lockDir, 'taken.lock'), 'utf8'), theirs, 'the other\'s is left (removed on the code before)');
});

test('a process in another pid namespace with the same host name has another host tag: its pids are not judged here', { skip: process.getuid?.() !== 0 && 'unshare --pid needs root' }, async () => {
  const script = `import('${new URL('../../src/util/pid.ts', import.meta.url).href}').then((m) => console.log(m.ownerTag(1)))`;
  const run = spawnSync('unshare', ['--pid', '--fork', process.execPath, '--import', 'tsx', '-e', script], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const theirs = run.stdout.trim();
  assert.match(theirs, /^[0-9a-f]{8}-1$/);
  assert.notEqual(theirs, ownerTag(1), 'the same host name, another numbering of processes');
  assert.equal(ownerDead(`${theirs}-x`), false, 'not ours to call dead');
});

test('waitLock goes on at once without a stale lock that cannot be removed, and says so once (the size lock: every commit waited 5 s)', async () => {
  const dir = path.join(work, `${++dirs}`);
  const lockDir = path.join(dir, 'parts', 'locks');
  const tmpDir = path.join(dir, 'parts', 'tmp');
  await mkdir(lockDir, { recursive: true });
  await mkdir(tmpDir, { recursive: true });
  const fs = new CacheFs(dir);
  await fs.ready;
  const logs: string[] = [];
  const locks = new CacheLocks(dir, lockDir, tmpDir, (_d, op) => op(), (l) => logs.push(l), fs);
  const file = path.join(lockDir, 'size.lock');
  await mkdir(file);
  await age(file, LOCK_STALE_MS + 1000);
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    assert.equal(await locks.waitLock('size', 5000), undefined);
    assert.ok(Date.now() - t0 < 1000, `went on at once (${Date.now() - t0} ms)`);
  }
  assert.deepEqual(logs, [`cache: ${file}: a stale lock that cannot be removed (EISDIR): remove it by hand; going on without it`]);
});

test('a lock taken while the cleanup runs is not unlinked by it: tryLock waits for a cleanup under way', async () => {
  const { locks, lockDir, tmpDir } = await newLocks();
  // Enough of a dead run's leftovers that the cleanup takes a while; the size lock among them, stale.
  for (let i = 0; i < 300; i++) await writeFile(path.join(tmpDir, `${ownerTag(deadPid)}-${i}.partial`), 'x');
  await writeFile(path.join(lockDir, 'size.lock'), `${ownerTag(deadPid)}-1\n`);
  let cleaned = false;
  void locks.cleanOnce().then(() => (cleaned = true)); // as PartCache starts it
  const lock = await locks.tryLock('size');
  assert.ok(lock, 'taken');
  assert.equal(cleaned, true, 'after the cleanup, which could have unlinked it');
  assert.ok((await readdir(lockDir)).includes('size.lock'), 'still there');
  await lock.release();
});
