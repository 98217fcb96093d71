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
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describeRun, runCli } from '../helpers/cli.js';
import type { FixtureVariant } from '../helpers/fixtures.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { mountJigdo } from '../helpers/mount.js';
import { assertCacheVerified, cacheFiles, cacheLeftovers, fileMd5, gets, jigdoWithServers, md5hex, missingPartLines, partsUri, randomPartsImage } from '../helpers/network.js';

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
