/**
 * A cache on a small file system (a tmpfs of a few MB made for the test, as root like full-disk.test.ts): downloads in
 * flight were written to temporary files beside the cache's parts, and a reader's prefetch started many at once, so
 * parts failed with ENOSPC while older parts sat in the cache. Now they make room (evicting least recently used parts)
 * or wait for it; a part larger than the file system fails with one line naming the cache and the sizes; nothing
 * partial is left.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, readdir, readFile, readlink, rm, stat, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describeRun, runCli } from '../helpers/cli.js';
import type { FixtureVariant } from '../helpers/fixtures.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { mountJigdo } from '../helpers/mount.js';
import { assertCacheVerified, cacheFiles, cacheLeftovers, fileMd5, gets, jigdoWithServers, md5hex, missingPartLines, partsUri, randomPartsImage, waitFor } from '../helpers/network.js';

const run = promisify(execFile);

const PARTS = 16;
const PART = 2_500_000; // 40 MB of parts; four fit in the 10 MB file system at once

let work: string;
let big: FixtureVariant;
let mirror: Mirror;
const tmpfs: string[] = [];

/** A fresh tmpfs of `size` (mount's syntax: 10m) under the test's folder. */
async function smallDisk(name: string, size: string): Promise<string> {
  const dir = path.join(work, name);
  await mkdir(dir);
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  tmpfs.push(dir);
  return dir;
}

/**
 * Another program takes what is left on the file system of `file` but `leave` bytes (written into `file`, which
 * stays). Leaving more than the cache keeps free on a small disk (5 %: cache-eviction.ts) keeps the cache's own
 * eviction out of it, so that only the writes of a download in flight find the disk full.
 */
async function fillUp(file: string, leave: number): Promise<number> {
  const { bavail, bsize } = await statfs(path.dirname(file));
  const want = bavail * bsize - leave;
  const fh = await open(file, 'w');
  const chunk = Buffer.alloc(64 << 10, 0xa5);
  let written = 0;
  try {
    while (written < want) written += (await fh.write(chunk, 0, Math.min(chunk.length, want - written))).bytesWritten;
  } finally {
    await fh.close();
  }
  return written;
}

/** The files under `dir` that process `pid` has open: by name, and those unlinked (`(deleted)`). */
async function openIn(pid: number, dir: string): Promise<{ linked: string[]; deleted: string[] }> {
  const fds = await readdir(`/proc/${pid}/fd`);
  const links = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
  const inDir = links.filter((l) => l.startsWith(dir + '/'));
  return { linked: inDir.filter((l) => !l.endsWith(' (deleted)')), deleted: inDir.filter((l) => l.endsWith(' (deleted)')) };
}

/** Bytes of the file system of `dir` in use beyond its files' sizes: files unlinked and still open (and a few blocks of folders). */
async function heldBytes(dir: string): Promise<number> {
  const { blocks, bfree, bsize } = await statfs(dir);
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const sizes = await Promise.all(entries.filter((e) => e.isFile()).map((e) => stat(path.join(e.parentPath, e.name)).then((st) => st.size, () => 0)));
  return (blocks - bfree) * bsize - sizes.reduce((n, b) => n + b, 0);
}

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-small-cache-'));
  big = await randomPartsImage(work, PARTS, PART);
  mirror = await startMirror({ root: path.join(work, 'tree') });
});

after(async () => {
  await mirror?.close();
  for (const dir of tmpfs) await run('umount', ['-l', dir]).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

describe('a cache on a small file system', () => {
  test('make-image fetching 40 MB through a 10 MB file system: older parts make room, the image is exact', async () => {
    const d = path.join(work, 'make');
    const jigdo = await jigdoWithServers(big, [partsUri(mirror)], d);
    const cache = path.join(await smallDisk('make-cache', '10m'), 'cache');
    const out = path.join(d, 'out.iso');
    const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', cache], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, describeRun(r));
    assert.doesNotMatch(r.stderr, /ENOSPC/);
    assert.equal(await fileMd5(out), big.imageMd5);
    assert.deepEqual(await cacheLeftovers(cache), { tmp: [], locks: [] }, 'no partial file or lock left');
    assert.deepEqual(await cacheFiles(cache), [], 'its downloads removed once the image matched');
  });

  test('a mount reads the whole image through a 10 MB file system (prefetch and all), every byte right', async () => {
    const d = path.join(work, 'mount');
    const jigdo = await jigdoWithServers(big, [partsUri(mirror)], d);
    const cache = path.join(await smallDisk('mount-cache', '10m'), 'cache');
    const m = await mountJigdo(jigdo, [], { cacheDir: cache });
    try {
      assert.equal(m.mountResult.code, 0, describeRun(m.mountResult));
      const [name] = (await readdir(m.mnt)).filter((n) => n.endsWith('.iso'));
      const bytes = await readFile(m.file(name!));
      assert.equal(md5hex(bytes), big.imageMd5, await m.log());
      assert.doesNotMatch(await m.log(), /ENOSPC|not available/);
    } finally {
      await m.cleanup();
    }
    assert.deepEqual((await cacheLeftovers(cache)).tmp.filter((f) => f.endsWith('.partial')), [], 'no partial file left');
    await assertCacheVerified(cache);
  });

  test('the disk filled by another program while a part downloads: older parts make room, the download resumes', async () => {
    // Three parts of 2.5 MB in a 10 MB file system: the first two are in the cache when the third stops after 0.5 MB
    // (its room reserved, partly written). Another program then takes all but 1 MB of the free space; the third part's
    // writes fail with ENOSPC once resumed, and no other download is left to make room by reserving it.
    const d = path.join(work, 'filled');
    const three = await randomPartsImage(d, 3, PART);
    const own = await startMirror({ root: path.join(d, 'tree') }); // its requests are this test's alone
    const last = '/parts/p02.bin';
    own.fault(last, { kind: 'stall', afterBytes: 500_000, times: 1 });
    const jigdo = await jigdoWithServers(three, [partsUri(own)], d);
    const disk = await smallDisk('filled-cache', '10m');
    const cache = path.join(disk, 'cache');
    const out = path.join(d, 'out.iso');
    try {
      const running = runCli(['make-image', jigdo, '-o', out, '--cache-dir', cache, '--timeout', '2'], { timeoutMs: 60_000 });
      // The first two committed (no write of theirs left to race the filler), the third stalled.
      const stalled = (): boolean => own.requests.some((q) => q.path === last && q.bytes >= 500_000);
      await waitFor(async () => stalled() && (await cacheFiles(cache)).length === 2, 30_000, 'two parts in the cache and the third stalled');
      const filler = await fillUp(path.join(disk, 'filler'), 1 << 20); // less than the 2 MB the part still needs
      const r = await running;
      assert.equal(r.code, 0, `${describeRun(r)}\n(filler: ${filler} bytes)`);
      assert.match(r.stderr, new RegExp(`cache ${cache}: full while part \\S+ was written: evicted older parts, resuming`), `filler ${filler} ` + JSON.stringify(own.requests.map((q) => [q.path, q.range, q.bytes])));
      assert.doesNotMatch(r.stderr, /wrong bytes|checksum mismatch/, 'nothing blamed on the mirror');
      assert.equal(await fileMd5(out), three.imageMd5);
      assert.equal(gets(own, last).length, 3, 'the stalled part: asked, resumed, resumed again after the eviction');
      assert.deepEqual(await cacheLeftovers(cache), { tmp: [], locks: [] }, 'no partial file or lock left');
    } finally {
      await own.close();
    }
  });

  test('parts a mount holds open, evicted by another process on the same cache: the mount lets go, the space comes back', async (t) => {
    // The mount (one process) reads image X, whose three 2 MB parts it then holds open; make-image of image Y (another
    // process, 6.3 MB of other parts) through the same 10 MB cache has to evict them. Nothing tells the mount: before,
    // it kept the unlinked files open for good, and their blocks with them (the evictions gained nothing).
    const d = path.join(work, 'shared');
    const x = await randomPartsImage(path.join(d, 'x'), 3, 2_000_000);
    const y = await randomPartsImage(path.join(d, 'y'), 3, 2_100_000);
    const mirrors = [await startMirror({ root: path.join(d, 'x', 'tree') }), await startMirror({ root: path.join(d, 'y', 'tree') })];
    const disk = await smallDisk('shared-cache', '10m');
    const cache = path.join(disk, 'cache');
    const m = await mountJigdo(await jigdoWithServers(x, [partsUri(mirrors[0]!)], path.join(d, 'x')), [], { cacheDir: cache });
    try {
      assert.equal(m.mountResult.code, 0, describeRun(m.mountResult));
      const [name] = (await readdir(m.mnt)).filter((n) => n.endsWith('.iso'));
      assert.equal(md5hex(await readFile(m.file(name!))), x.imageMd5, await m.log());
      const pid = await m.pid();
      const parts = path.join(cache, 'parts', 'md5');
      const before = await openIn(pid, parts);
      assert.equal(before.linked.length, 3, `the mount holds its three parts open: ${JSON.stringify(before)}`);

      const out = path.join(d, 'y.iso');
      const started = Date.now();
      const r = await runCli(['make-image', await jigdoWithServers(y, [partsUri(mirrors[1]!)], path.join(d, 'y')), '-o', out, '--cache-dir', cache], { timeoutMs: 60_000 });
      t.diagnostic(`make-image: ${Date.now() - started} ms; held after it: ${await heldBytes(disk)} bytes`);
      const still = await waitFor(async () => (await openIn(pid, parts)).deleted.length === 0, 5_000, 'the mount to close').then(
        () => [],
        async () => (await openIn(pid, parts)).deleted,
      );
      assert.deepEqual(still, [], 'the mount still holds cache files evicted by make-image, 5 s after it ended');
      assert.ok((await heldBytes(disk)) < 1 << 20, `the evicted parts' space is back (${await heldBytes(disk)} bytes held)`);
      assert.equal(r.code, 0, describeRun(r));
      assert.equal(await fileMd5(out), y.imageMd5);
      await run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']).catch(() => undefined); // read through the mount again, not the kernel's copy
      assert.equal(md5hex(await readFile(m.file(name!))), x.imageMd5, 'the mount reads its evicted parts again');
      assert.doesNotMatch(await m.log(), /ENOSPC|not available/);
    } finally {
      await m.cleanup();
      for (const mirror of mirrors) await mirror.close();
    }
  });

  test('a part larger than the whole file system: one line naming the cache and the sizes, the mirror never asked', async () => {
    const d = path.join(work, 'tiny');
    const own = await startMirror({ root: path.join(work, 'tree') }); // its requests are this test's alone
    const jigdo = await jigdoWithServers(big, [partsUri(own)], d);
    const cache = path.join(await smallDisk('tiny-cache', '2m'), 'cache');
    const r = await runCli(['make-image', jigdo, '-o', path.join(d, 'out.iso'), '--cache-dir', cache], { timeoutMs: 60_000 });
    assert.equal(r.code, 1, describeRun(r));
    const lines = missingPartLines(r.stderr);
    assert.equal(lines.length, PARTS, r.stderr);
    for (const l of lines) assert.match(l, new RegExp(`${cache}: part \\S+ needs 2,500,000 bytes, more than this file system holds \\(2,097,152 bytes\\)`));
    await own.close();
    assert.deepEqual(own.requests.filter((q) => q.path.startsWith('/parts/')), [], 'no part was asked for');
    assert.equal(gets(own, '/parts/p00.bin').length, 0);
    assert.deepEqual(await cacheLeftovers(cache), { tmp: [], locks: [] });
  });
});
