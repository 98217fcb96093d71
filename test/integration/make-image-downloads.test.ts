/**
 * What make-image leaves in the disk cache of the parts it downloads (issue 11): nothing once its image is written
 * (the image holds them, and keeping a second copy cost the disk as much again), every part with --keep-parts, and
 * every download when it could not finish, so that its rerun fetches only what is still missing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { md5hex } from '../helpers/hash.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { assertCacheVerified, cacheFiles, cacheLeftovers, fileMd5, trustedLaterMirror } from '../helpers/network.js';
import { dir, plainConfig, setupNetworkSuite, work } from '../helpers/network-suite.js';
import { makeUpgrade, requestsByPath, type Upgrade } from '../helpers/upgrade-fixture.js';

setupNetworkSuite();

let up: Upgrade;
let v2md5: string;
let v2mirror: Mirror;

/** make-image of v2 from `mirror` into `d/out.iso` with the cache `d/cache`. */
function makeImage(d: string, mirror: Mirror, ...extra: string[]): ReturnType<typeof runCli> {
  const args = ['make-image', up.jigdo, '-o', path.join(d, 'out.iso'), '--cache-dir', path.join(d, 'cache'), '--config', plainConfig];
  return runCli([...args, '--mirror', `Parts=${mirror.url}`, ...extra], { timeoutMs: 60_000 });
}

describe('make-image and the parts it downloads', () => {
  before(async () => {
    up = await makeUpgrade(path.join(work, 'upgrade'));
    v2md5 = md5hex(await readFile(up.v2iso));
    v2mirror = await startMirror({ root: up.v2 }); // every part of v2
  });
  after(() => v2mirror?.close());

  test('by default none of them stays in the cache once the image is written', async () => {
    const d = await dir('downloads-default');
    const r = await makeImage(d, v2mirror);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fileMd5(path.join(d, 'out.iso')), v2md5);
    assert.deepEqual(await cacheFiles(path.join(d, 'cache')), [], 'no part, verified or unhashed, is left');
    assert.deepEqual((await cacheLeftovers(path.join(d, 'cache'))).tmp, []);
  });

  test('--keep-parts: every part stays, under its checksum name', async () => {
    const d = await dir('downloads-kept');
    const r = await makeImage(d, v2mirror, '--keep-parts');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fileMd5(path.join(d, 'out.iso')), v2md5);
    const files = await assertCacheVerified(path.join(d, 'cache'));
    assert.equal(files.length, up.parts);
  });

  /** A make-image into `d` whose mirror lacks one part: it fails, keeping every download (most of them unhashed). */
  async function interruptedRun(d: string): Promise<{ lost: string; kept: Awaited<ReturnType<typeof cacheFiles>> }> {
    // Every part but one: the mirror proves right (more than TRUST_AFTER_PARTS parts), so most are kept unhashed. One
    // request at a time: with several, all parts of this small image may have started before the mirror proved right.
    const lost = up.missing.find((p) => /^[\w./+-]+$/.test(p))!;
    const partial = await trustedLaterMirror(up.v2);
    try {
      partial.fault(`/${lost}`, { kind: 'status', code: 404 });
      const first = await makeImage(d, partial, '--retries', '0', '--connections', '1');
      assert.equal(first.code, 1, first.stderr);
      assert.match(first.stderr, /1 part\(s\) missing/);
    } finally {
      await partial.close();
    }
    const kept = await cacheFiles(path.join(d, 'cache'));
    assert.equal(kept.length, up.parts - 1, 'every download is kept');
    assert.ok(kept.some((f) => f.hex.endsWith('.unverified')), 'some of them unhashed');
    assert.ok(kept.some((f) => /^[0-9a-f]+$/.test(f.hex)), 'and some hashed (before the mirror proved right)');
    return { lost, kept };
  }

  /** The rerun of interruptedRun from a mirror with every part: only the lost part is fetched. */
  async function rerun(d: string, lost: string, ...extra: string[]): Promise<void> {
    const full = await startMirror({ root: up.v2 });
    try {
      const r = await makeImage(d, full, ...extra);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await fileMd5(path.join(d, 'out.iso')), v2md5);
      assert.deepEqual([...requestsByPath(full)], [[lost, 1]], 'only the missing part is fetched');
    } finally {
      await full.close();
    }
  }

  test('a run that cannot finish keeps its downloads; the rerun hashes them, fetches only what is missing, and removes the unhashed ones', async () => {
    const d = await dir('downloads-resumed');
    const cache = path.join(d, 'cache');
    const { lost, kept } = await interruptedRun(d);
    await rerun(d, lost);
    // The first run's unhashed downloads were hashed before use (adopted), then removed with the rerun's own download:
    // downloads, all of them. Its hashed ones stay: under a checksum name, a part may as well be a mount's.
    const after = await assertCacheVerified(cache);
    const hashedBefore = kept.filter((f) => /^[0-9a-f]+$/.test(f.hex)).map((f) => f.hex);
    assert.deepEqual(after.map((f) => f.hex).sort(), hashedBefore.sort());
  });

  test('the same rerun with --keep-parts keeps what it adopted, under checksum names', async () => {
    const d = await dir('downloads-resumed-kept');
    const { lost } = await interruptedRun(d);
    await rerun(d, lost, '--keep-parts');
    const after = await assertCacheVerified(path.join(d, 'cache'));
    assert.equal(after.length, up.parts, 'every part, the rerun\'s download too');
    assert.ok(after.every((f) => /^[0-9a-f]+$/.test(f.hex)), 'nothing unhashed is left');
  });
});
