/**
 * Issue 10: old disc images as part sources. v2 is published with jigdo-file make-template; v1 (sharing most
 * files) is given to --scan as an image file in each flavour (Rock Ridge, Joliet only, UDF bridge, UDF only,
 * a zeroed directory with --scan-deep); a test mirror holds only the parts v1 lacks. make-image (and a mount
 * + cp) must give v2 byte-exactly while the mirror sees exactly one request per missing part.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, open, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { assertOk, runCli } from '../helpers/cli.js';
import { dropIsoDescriptors, reportLba, sparseBigImage, udfBridge, xorrisoImage } from '../helpers/disc-images.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { mountJigdo } from '../helpers/mount.js';
import { assertOnlyMissingFetched as assertMissingFetched, makeUpgrade, type Upgrade } from '../helpers/upgrade-fixture.js';
import { indexFiles } from '../helpers/hash-index-file.js';

let work: string;
let up: Upgrade;
let mirror: Mirror;
let v2bytes: Buffer;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-disc-images-'));
  up = await makeUpgrade(work);
  v2bytes = await readFile(up.v2iso);
  mirror = await startMirror({ root: up.mirrorDir });
});
after(async () => {
  await mirror?.close();
  await rm(work, { recursive: true, force: true });
});

function assertOnlyMissingFetched(): void {
  assertMissingFetched(mirror, up);
}

async function v1Image(flavour: 'rr' | 'joliet' | 'bridge' | 'udf-only'): Promise<string> {
  const image = path.join(work, `v1-${flavour}.iso`);
  if (flavour === 'rr' || flavour === 'joliet') await xorrisoImage(up.v1, image, flavour);
  else await udfBridge(up.v1, image);
  if (flavour === 'udf-only') await dropIsoDescriptors(image);
  return image;
}

async function makeImage(scanArgs: string[], cacheDir = path.join(work, `cache-${Math.random().toString(36).slice(2)}`)): Promise<{ stderr: string }> {
  mirror.reset();
  const out = path.join(work, 'out.iso');
  await rm(out, { force: true });
  const r = await runCli(['make-image', up.jigdo, '-o', out, '--mirror', `Parts=${mirror.url}`, '--cache-dir', cacheDir, ...scanArgs]);
  assertOk(r);
  assert.ok((await readFile(out)).equals(v2bytes), 'v2 byte-exact');
  return r;
}

for (const flavour of ['rr', 'joliet', 'bridge', 'udf-only'] as const) {
  test(`make-image --scan v1.iso (${flavour}): v2 byte-exact, the mirror sees only the parts v1 lacks`, async () => {
    const image = await v1Image(flavour);
    const r = await makeImage(['--scan', image]);
    assertOnlyMissingFetched();
    const shared = up.parts - up.missing.length;
    assert.match(r.stderr, new RegExp(`from v1-${flavour}\\.iso: ${shared} parts, `));
  });
}

test('make-image --scan v1.iso over 4 GiB (a multi-extent file first): the parts lie beyond 4 GiB, read right', async () => {
  const image = path.join(work, 'v1-big.iso');
  await sparseBigImage(up.v1, work, image);
  const shared = [...(await reportLba(image))].filter(([rel]) => rel.startsWith('pool/'));
  assert.ok(shared.every(([, e]) => e[0]!.offset > 2 ** 32), 'every package lies beyond 4 GiB');
  const r = await makeImage(['--scan', image]);
  assertOnlyMissingFetched();
  assert.match(r.stderr, new RegExp(`from v1-big\\.iso: ${up.parts - up.missing.length} parts, `));
});

test('found inside a --scan folder (by its volume descriptors, whatever its name); --no-scan-images turns it off', async () => {
  const dir = path.join(work, 'old-cds');
  await import('node:fs/promises').then((fs) => fs.mkdir(dir, { recursive: true }));
  await copyFile(await v1Image('rr'), path.join(dir, 'last-month.bin'));
  await makeImage(['--scan', dir]);
  assertOnlyMissingFetched();
  const r = await runCli(['missing', up.jigdo, '--scan', dir, '--no-scan-images', '--offline', '--cache-dir', path.join(work, 'cache-off')]);
  assert.match(r.stderr, new RegExp(`${up.parts} of ${up.parts} parts missing`));
});

test('missing counts the parts inside the old image; the hash index remembers them (no hashing the second time)', async () => {
  const image = await v1Image('rr');
  const cacheDir = path.join(work, 'cache-missing');
  const args = ['missing', up.jigdo, '--scan', image, '--offline', '--cache-dir', cacheDir, '--json'];
  const first = await runCli(args);
  assert.equal(first.code, 0, first.stderr);
  const json = JSON.parse(first.stdout) as { missing: number; fromImages: Array<{ image: string; parts: number }> };
  assert.equal(json.missing, up.missing.length);
  assert.deepEqual(json.fromImages.map((u) => [path.basename(u.image), u.parts]), [['v1-rr.iso', up.parts - up.missing.length]]);
  assert.match(first.stderr, new RegExp(`from v1-rr\\.iso: ${up.parts - up.missing.length} parts, [\\d.]+ KB`));
  const files = await indexFiles(path.join(cacheDir, 'hash-index.jsonl'));
  assert.ok(Object.keys(files[image]!.sums).length >= up.parts - up.missing.length, 'the matches inside the image are in the index');
  // The second run with the same cache: a mount shows no local hashing at all.
  const m = await mountJigdo(up.jigdo, ['--scan', image, '--mirror', `Parts=${mirror.url}`], { cacheDir });
  try {
    mirror.reset();
    const name = (await readdir(m.mnt))[0]!;
    await copyFile(m.file(name), path.join(work, 'copied.iso'));
    assert.ok((await readFile(path.join(work, 'copied.iso'))).equals(v2bytes), 'mount + cp: v2 byte-exact');
    assertOnlyMissingFetched();
    const st = (await m.status()) as { images: Array<{ parts: { fromImages: number }; localHashed: number }> };
    assert.equal(st.images[0]!.parts.fromImages, up.parts - up.missing.length);
    assert.equal(st.images[0]!.localHashed, 0, 'nothing hashed again');
  } finally {
    await m.cleanup();
  }
});

test('--scan-deep on a v1 whose descriptors and directories are zeroed: the parts are found by their RsyncSum64', async () => {
  const image = await v1Image('rr');
  const firstData = Math.min(...[...(await reportLba(image)).values()].map((e) => e[0]!.offset));
  const fh = await open(image, 'r+');
  await fh.write(Buffer.alloc(firstData - 16 * 2048), 0, firstData - 16 * 2048, 16 * 2048);
  await fh.close();
  const none = await runCli(['missing', up.jigdo, '--scan', image, '--offline', '--cache-dir', path.join(work, 'cache-deep0')]);
  assert.match(none.stderr, new RegExp(`${up.parts} of ${up.parts} parts missing`), 'the reader cannot list it');
  await makeImage(['--scan-deep', image]);
  assertOnlyMissingFetched();
});

test("verify --scan v1.iso: each wrong part region says whether a good copy is inside the old image", async () => {
  const image = await v1Image('rr');
  const damaged = path.join(work, 'damaged.iso');
  await copyFile(up.v2iso, damaged);
  const v2extents = await reportLba(up.v2iso);
  const shared = 'pool/main/a/pkg0_1.0_amd64.deb';
  const fh = await open(damaged, 'r+');
  for (const rel of [shared, 'pool/main/n/new_1.0_all.deb']) await fh.write(Buffer.from('damaged'), 0, 7, v2extents.get(rel)![0]!.offset + 100);
  await fh.close();
  const r = await runCli(['verify', up.jigdo, damaged, '--scan', image, '--offline', '--cache-dir', path.join(work, 'cache-verify')]);
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stdout.split('\n').filter((l) => l.includes('has checksum'));
  assert.equal(lines.length, 2, r.stdout);
  const at = (rel: string): string => lines.find((l) => l.startsWith(`  bytes ${v2extents.get(rel)![0]!.offset}..`))!;
  assert.match(at(shared), new RegExp(`a good copy is inside ${image.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  assert.doesNotMatch(at('pool/main/n/new_1.0_all.deb'), /good copy/, 'v1 lacks that part');
  for (const rel of [shared, 'pool/main/n/new_1.0_all.deb']) assert.match(at(rel), new RegExp(`^ {2}bytes \\d+\\.\\.\\d+ \\(\\d+\\): part \\S+ \\(\\w+:${rel.replace(/[.]/g, '\\.')}\\) has checksum`), 'named as the .jigdo names it');
});
