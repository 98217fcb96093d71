/**
 * A full disk, for real: a 256 KiB tmpfs mounted for the test (as root, like the FUSE tests). The image
 * written onto it and the part cache kept on it each fail with one clear line naming the place and
 * ENOSPC, leave nothing behind, do not blame the mirror, and a rerun with room is exact.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { assertCleanFailure, assertOk, runCli, SAMPLE_PARTS, SAMPLES } from '../helpers/cli.js';
import { buildFixtures, type FixtureVariant } from '../helpers/fixtures.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { assertCacheVerified, cacheFiles, cacheLeftovers, fileMd5, gets, jigdoWithServers, missingPartLines, partsUri } from '../helpers/network.js';

const run = promisify(execFile);
let work: string;
let full: string;
let mirror: Mirror;
let v: FixtureVariant;
let tree: string;

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-full-disk-'));
  full = path.join(work, 'full');
  await mkdir(full);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', full]);
  const fx = await buildFixtures();
  v = fx.variants['jf-md5-gzip'];
  tree = fx.tree;
  mirror = await startMirror({ root: tree });
});

after(async () => {
  await mirror?.close();
  await run('umount', ['-l', full]).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

describe('a full disk', () => {
  test('make-image onto a full file system: one line naming the image, nothing left there', async () => {
    const out = path.join(full, 'image.iso'); // the sample image is 536,576 bytes
    const r = await runCli(['make-image', path.join(SAMPLES, 'jf-md5-gzip.jigdo'), '-o', out, '--scan', SAMPLE_PARTS, '--cache-dir', path.join(work, 'cache1')]);
    assertCleanFailure(r, out, /cannot write: ENOSPC/);
    assert.deepEqual(await readdir(full), [], 'no image and no temporary file');
  });

  test('a part cache on a full file system: every missing part says so, the mirror is not blamed, the cache stays clean', async () => {
    const d = path.join(work, 'net');
    const jigdo = await jigdoWithServers(v, [partsUri(mirror)], d);
    const cache = path.join(full, 'cache');
    const out = path.join(d, 'out.iso');
    const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', cache, '--retries', '0']);
    assert.equal(r.code, 1, r.stderr);
    const partLines = missingPartLines(r.stderr);
    assert.ok(partLines.length >= 2, r.stderr); // the 3 MB and 1.5 MB parts cannot fit; small ones may
    for (const l of partLines) assert.ok(l.includes(cache) && /ENOSPC/.test(l), `names the cache and ENOSPC: ${l}`);
    assert.doesNotMatch(r.stderr, /demoted/, 'a full disk is not the mirror failing');
    for (const l of partLines) {
      const p = /Parts:(\S+):/.exec(l)![1]!;
      // Asked once at most: no other mirror or retry for a local failure (a part larger than the file system is not asked for).
      assert.ok(gets(mirror, `/parts/${p}`).length <= 1, `${p}: asked once at most, no other mirror or retry tried for a local failure`);
    }
    assert.deepEqual(await cacheLeftovers(cache), { tmp: [], locks: [] }, 'no partial file or lock left');
    await assertCacheVerified(cache); // whatever did fit is exactly what its name says
    assert.deepEqual((await readdir(d)).filter((f) => f.startsWith('out.iso')), []);

    const again = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(work, 'roomy'), '--keep-parts']);
    assertOk(again);
    assert.equal(await fileMd5(out), v.imageMd5);
    assert.equal((await cacheFiles(path.join(work, 'roomy'))).length, 6);
  });

  test('a cache on a disk already full (its folders there, a file of the user filling it): each part names the cache and ENOSPC, no empty lock is left', async () => {
    const d = path.join(work, 'prefilled');
    const jigdo = await jigdoWithServers(v, [partsUri(mirror)], d);
    const disk = path.join(work, 'prefilled-disk');
    await mkdir(disk);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', disk]);
    try {
      const cache = path.join(disk, 'cache');
      // As an earlier run left them; then the disk is filled by something else (not a cache file: nothing to evict).
      for (const sub of ['parts/tmp', 'parts/locks']) await mkdir(path.join(cache, sub), { recursive: true });
      await run('sh', ['-c', `dd if=/dev/urandom of='${path.join(disk, 'filler')}' bs=4k 2>/dev/null; true`]);
      const r = await runCli(['make-image', jigdo, '-o', path.join(d, 'out.iso'), '--cache-dir', cache, '--retries', '0']);
      assert.equal(r.code, 1, r.stderr);
      const partLines = missingPartLines(r.stderr);
      assert.ok(partLines.length >= 1, r.stderr);
      for (const l of partLines) assert.ok(l.includes(cache) && /ENOSPC/.test(l), `names the cache and ENOSPC: ${l}`);
      assert.doesNotMatch(r.stderr, /demoted/, 'a full disk is not the mirror failing');
      assert.deepEqual(await cacheLeftovers(cache), { tmp: [], locks: [] }, 'no partial file or lock left');
    } finally {
      await run('umount', ['-l', disk]).catch(() => undefined);
    }
  });
});
