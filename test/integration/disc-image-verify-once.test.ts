/**
 * Verify once inside old disc images (issue 10's speed, issue 11 item 2): make-image takes a v1 file at the very
 * path the .jigdo names, whose first block has the template's RsyncSum64, without hashing it (the image checksum
 * checks every byte); a file whose first block differs is not even hashed. A rebuilt file under the old name with
 * the same first block costs a second pass, never a wrong image, and never the user's v1 image.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findMissing, makeImage } from '../../src/build/make-image.js';
import { loadJigdo, openImage, selectImage, type SourceOptions } from '../../src/engine/session.js';
import { assertOk, runCli } from '../helpers/cli.js';
import { xorrisoImage } from '../helpers/disc-images.js';
import { md5hex } from '../helpers/hash.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { assertOnlyMissingFetched, makeUpgrade, type Upgrade } from '../helpers/upgrade-fixture.js';

/** A part v1 lacks (9000 bytes, v2's new package): the tests put other bytes under its name into a v1. */
const NEW = 'pool/main/n/new_1.0_all.deb';

let work: string;
let up: Upgrade;
let mirror: Mirror;
let v2bytes: Buffer;
let v1iso: string;
let n = 0;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-disc-verify-once-'));
  up = await makeUpgrade(work);
  v2bytes = await readFile(up.v2iso);
  mirror = await startMirror({ root: up.mirrorDir });
  v1iso = path.join(work, 'v1.iso');
  await xorrisoImage(up.v1, v1iso, 'rr');
});
after(async () => {
  await mirror?.close();
  await rm(work, { recursive: true, force: true });
});

async function session(extra: Partial<SourceOptions>, logs: string[] = []) {
  const j = await loadJigdo(up.jigdo);
  return openImage(j, selectImage(j), { local: [], scan: [], cacheDir: path.join(work, `cache-${++n}`), memory: 32 << 20, log: (l) => logs.push(l), ...extra });
}

/** v1 with a file of `NEW`'s size under its name: v2's bytes up to `keep`, other bytes after. */
async function v1WithRebuilt(keep: number): Promise<string> {
  const tree = path.join(work, `v1-rebuilt-${keep}`);
  await cp(up.v1, tree, { recursive: true });
  const right = await readFile(path.join(up.v2, NEW));
  const other = Buffer.from(right.map((b, i) => (i < keep ? b : b ^ 0x5a)));
  await mkdir(path.dirname(path.join(tree, NEW)), { recursive: true });
  await writeFile(path.join(tree, NEW), other);
  const image = `${tree}.iso`;
  await xorrisoImage(tree, image, 'rr');
  return image;
}

/** `jigdofs make-image --scan image` with the mirror holding what v1 lacks: v2 byte-exact, each missing part asked once. */
async function makeImageFrom(image: string): Promise<{ stderr: string }> {
  mirror.reset();
  const out = path.join(work, `out-${++n}.iso`);
  const r = await runCli(['make-image', up.jigdo, '-o', out, '--scan', image, '--mirror', `Parts=${mirror.url}`, '--cache-dir', path.join(work, `cache-${n}`)]);
  assertOk(r);
  assert.ok((await readFile(out)).equals(v2bytes), 'v2 byte-exact');
  assertOnlyMissingFetched(mirror, up);
  return r;
}

test('make-image hashes no v1 file at the path the .jigdo names; the image checksum checks them, the index then knows them', async () => {
  // The parts v1 lacks come from --local (named, so also taken unhashed): nothing at all is hashed but the image.
  const cacheDir = path.join(work, `cache-${++n}`);
  const out = path.join(work, `clean-${n}.iso`);
  const s = await session({ scan: [v1iso], local: [{ label: 'Parts', dir: up.mirrorDir }], cacheDir });
  try {
    assert.deepEqual((await makeImage(s, out)).missing, []);
    assert.equal(s.local.stats.hashed, 0, 'no part hashed before use');
    assert.equal(s.local.images.summary()[0]?.parts, up.parts - up.missing.length);
  } finally {
    await s.close();
  }
  assert.ok((await readFile(out)).equals(v2bytes), 'v2 byte-exact');
  // Recorded once the image matched: a mount or `missing` later hashes nothing either.
  const again = await session({ scan: [v1iso], local: [{ label: 'Parts', dir: up.mirrorDir }], cacheDir });
  try {
    assert.deepEqual(await findMissing(again), []);
    assert.equal(again.local.stats.hashed, 0);
  } finally {
    await again.close();
  }
});

test('a rebuilt file under the old name with other first bytes is not hashed, not taken: fetched once from the mirror', async () => {
  const image = await v1WithRebuilt(0);
  const before = md5hex(await readFile(image));
  const s = await session({ scan: [image] });
  try {
    // `missing` hashes what it finds (no deferral there), but v1's file under NEW's name is not among them.
    assert.equal((await findMissing(s)).length, up.missing.length);
    assert.equal(s.local.stats.hashed, up.parts - up.missing.length, 'other first bytes: that file is not hashed');
  } finally {
    await s.close();
  }
  await makeImageFrom(image);
  assert.equal(md5hex(await readFile(image)), before, 'v1 untouched');
});

test('a rebuilt file under the old name with the same first block: the wrong image is caught, the part fetched, v1 kept', async () => {
  const image = await v1WithRebuilt(4096);
  const before = md5hex(await readFile(image));
  const r = await makeImageFrom(image);
  assert.match(r.stderr, /v1-rebuilt-4096\.iso: does not hold part \S+ \(9000 bytes\): not used/);
  // The parts counted as taken from the old image are those it gave: not the one it was found not to hold.
  const from = /^jigdofs: from v1-rebuilt-4096\.iso: (\d+) parts/m.exec(r.stderr);
  assert.equal(Number(from?.[1]), up.parts - up.missing.length, r.stderr);
  // The recheck after a wrong image removes bad *cache* files; a file of the user's (this image) stays as it was.
  assert.equal(md5hex(await readFile(image)), before, 'v1 still there, untouched');
});
