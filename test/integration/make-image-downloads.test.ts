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
import { assertCacheVerified, cacheFiles, cacheLeftovers, fileMd5 } from '../helpers/network.js';
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

  test('a run that cannot finish keeps its downloads: the rerun fetches only the parts still missing', async () => {
    const d = await dir('downloads-resumed');
    const partial = await startMirror({ root: up.mirrorDir }); // only the parts v1 lacks: the others are missing
    try {
      const first = await makeImage(d, partial);
      assert.equal(first.code, 1, first.stderr);
      assert.match(first.stderr, /part\(s\) missing/);
    } finally {
      await partial.close();
    }
    assert.equal((await cacheFiles(path.join(d, 'cache'))).length, up.missing.length, 'every download is kept');
    const full = await startMirror({ root: up.v2 });
    try {
      const rerun = await makeImage(d, full);
      assert.equal(rerun.code, 0, rerun.stderr);
      assert.equal(await fileMd5(path.join(d, 'out.iso')), v2md5);
      const asked = requestsByPath(full);
      const kept = new Set(up.missing);
      assert.deepEqual([...asked.keys()].filter((p) => kept.has(p)), [], 'nothing downloaded before is fetched again');
      assert.equal(asked.size, up.parts - up.missing.length, 'every other part is fetched');
      for (const [p, n] of asked) assert.equal(n, 1, `${p}: one request`);
    } finally {
      await full.close();
    }
  });
});
