/**
 * Downloads leave the page cache once a sequential reader has passed their last place in the image (ImageReader →
 * PartStore.passed → RemoteParts → PartCache.leavePageCache → util/page-cache.ts): after make-image over HTTP, with
 * parts cached unhashed (synced in the background, so dropped only after that sync), and after a `cp` of a real FUSE
 * mount over HTTP, no part file of the cache is left in memory. Lone reads keep the parts they fetched, and the
 * user's own files are never dropped. Residency is measured by util-linux's `fincore` (mincore(2)) right after the
 * job: a kernel that reclaims idle memory by itself (DAMON pageout, on these VMs) takes pages idle for a minute.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statfsSync } from 'node:fs';
import { copyFile, mkdir, open as openFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeImage } from '../../src/build/make-image.js';
import { TRUST_AFTER_PARTS } from '../../src/network/mirror-board.js';
import { md5hex } from '../helpers/hash.js';
import type { Mirror } from '../helpers/mirror-server.js';
import { mountJigdo, type TestMount } from '../helpers/mount.js';
import { cacheFiles, fileMd5, jigdoWithServers, partsUri, trustedLaterMirror } from '../helpers/network.js';
import { dir, fx, image, mirror, open, plainConfig, setupNetworkSuite, v } from '../helpers/network-suite.js';
import { makeUpgrade, type Upgrade } from '../helpers/upgrade-fixture.js';

setupNetworkSuite();

// tmpfs keeps its pages whatever one advises (they are the files): nothing to measure there.
const onTmpfs = statfsSync(tmpdir()).type === 0x01021994 && 'the temporary folder is tmpfs, whose pages cannot be dropped';

/** Bytes of these files in the page cache, by fincore. */
function resident(files: string[]): number {
  if (files.length === 0) return 0;
  const out = execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', ...files], { encoding: 'utf8' });
  return out.trim().split('\n').reduce((n, l) => n + Number(l.trim()), 0);
}

/** The part files of a cache (not its templates). */
async function partFiles(cacheDir: string): Promise<string[]> {
  return (await cacheFiles(cacheDir)).filter((f) => f.file.includes(`${path.sep}parts${path.sep}`)).map((f) => f.file);
}

describe('downloads leave the page cache once read through', { skip: onTmpfs }, () => {
  let up: Upgrade;
  let upMirror: Mirror;
  const mounts: TestMount[] = [];
  before(async () => {
    up = await makeUpgrade(path.join(await dir('upgrade'), 'u'));
    upMirror = await trustedLaterMirror(up.v2); // some parts go unhashed, on a loaded machine too
  });
  after(async () => {
    for (const m of mounts) await m.cleanup();
    await upMirror?.close();
  });

  test('make-image over HTTP: every downloaded part, hashed or cached unhashed, is out of memory afterwards', async () => {
    const d = await dir('make-image');
    const cache = path.join(d, 'cache');
    const o = await open(up.jigdo, cache, { mirror: [`Parts=${upMirror.url}`], connections: '2', config: plainConfig });
    try {
      assert.deepEqual((await makeImage(o.s, path.join(d, 'out.iso'))).missing, []);
      const { parts } = o.net.stats();
      assert.ok(parts.unhashed > 0 && parts.fetched > TRUST_AFTER_PARTS, `hashed and unhashed downloads: ${parts.unhashed} of ${parts.fetched} unhashed`);
    } finally {
      await o.close();
    }
    assert.equal(await fileMd5(path.join(d, 'out.iso')), md5hex(await readFile(up.v2iso)));
    const files = await partFiles(cache);
    assert.equal(files.length, up.parts);
    // The cache's close waited for the drops (and DAMON-like reclaim takes pages idle for far longer than this test).
    assert.equal(resident(files), 0, "the cache's parts are out of the page cache");
  });

  test("a mount's cp over HTTP: the parts it downloaded are out of memory; lone reads keep theirs", async () => {
    const m = await mirror();
    const jigdo = await jigdoWithServers(v, [partsUri(m)], await dir('mount'));
    const copied = await mountJigdo(jigdo, ['--config', plainConfig]);
    mounts.push(copied);
    assert.ok((await readFile(copied.file('image.iso'))).equals(image), 'the image, byte for byte');
    const files = await partFiles(copied.cacheDir);
    assert.ok(files.length >= 5, `the parts were downloaded (${files.length})`);
    await copied.umount(); // (the daemon's cache waits for its drops before it exits)
    assert.equal(resident(files), 0, "the cache's parts are out of the page cache");

    // 4 KiB here and there (a loop-mounted file system): no stream, so what they fetched stays in memory.
    const lone = await mountJigdo(jigdo, ['--config', plainConfig]);
    mounts.push(lone);
    const fh = await openFile(lone.file('image.iso'), 'r');
    try {
      for (const at of [image.length - 8192, Math.floor(image.length / 2), 40_000]) await fh.read(Buffer.alloc(4096), 0, 4096, at - (at % 4096));
    } finally {
      await fh.close();
    }
    const fetched = await partFiles(lone.cacheDir);
    assert.ok(fetched.length > 0, 'the reads fetched parts');
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(resident(fetched) > 0, 'parts fetched for lone reads stay in the page cache');
    await lone.umount();
  });

  test("only downloads are dropped, never the user's own files: make-image with some parts local, the rest over HTTP", async () => {
    const d = await dir('mixed');
    // Half of the parts in a folder of the user's, the rest only on the mirror.
    const local = path.join(d, 'mine');
    const parts = fx.files.filter((f) => f.isPart && f.size >= 4096);
    const mine = parts.filter((_, i) => i % 2 === 0);
    for (const f of mine) {
      await mkdir(path.dirname(path.join(local, f.path)), { recursive: true });
      await copyFile(f.absPath, path.join(local, f.path));
    }
    const m = await mirror();
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    const cache = path.join(d, 'cache');
    const o = await open(jigdo, cache, { scan: [local], config: plainConfig });
    // Every path handed to the pool's drops (the real pool: the drops run too).
    const dropped: string[] = [];
    const drop = o.s.pool.dropPages.bind(o.s.pool);
    o.s.pool.dropPages = (paths) => (dropped.push(...paths), drop(paths));
    try {
      assert.deepEqual((await makeImage(o.s, path.join(d, 'out.iso'))).missing, []);
    } finally {
      await o.close();
    }
    assert.equal(await fileMd5(path.join(d, 'out.iso')), md5hex(image));
    assert.ok(dropped.length > 0, 'the downloads were dropped');
    for (const p of dropped) assert.ok(p.startsWith(cache + path.sep), `${p} is a file of the cache`);
    const downloaded = await partFiles(cache);
    assert.ok(downloaded.length > 0 && downloaded.length < parts.length, `some parts came from the mirror (${downloaded.length})`);
    assert.equal(resident(downloaded), 0, 'the downloads are out of the page cache');
  });
});
