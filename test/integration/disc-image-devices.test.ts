/**
 * `--scan /dev/sr0`: last release's disc in its drive as a part source, without copying it first. A read-only loop
 * device stands for the drive (root only: losetup). make-image, missing, a mount and `--scan-deep DEVICE` take the
 * parts the disc has, as from the image file; nothing learned about one disc is taken for the next one in the same
 * drive (a device node keeps its inode and times when the disc is swapped), across runs and within one; a device the
 * user may not open is one line naming it and why; one in the user's group is read.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, copyFile, mkdtemp, open, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { userActor } from '../helpers/actor.js';
import { assertOk, describeRun, runCli } from '../helpers/cli.js';
import { LONG_NAME, bytesOf, dropIsoDescriptors, reportLba, udfBridge, writeAt, xorrisoImage } from '../helpers/disc-images.js';
import { fileMd5, md5hex } from '../helpers/hash.js';
import { attachLoop, detachAll, detachLoop, loopUnavailable } from '../helpers/loop-device.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { mountJigdo } from '../helpers/mount.js';
import { httpGet, startServe } from '../helpers/serve.js';
import { assertOnlyMissingFetched, makeUpgrade, type Upgrade } from '../helpers/upgrade-fixture.js';
import { indexFiles } from '../helpers/hash-index-file.js';

const skip = loopUnavailable();
let work: string;
let up: Upgrade;
let mirror: Mirror;
let v2md5: string;
let v1iso: string;
/** Parts of v2 that v1 holds. */
let shared: number;
let n = 0;
before(async () => {
  if (skip) return;
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-disc-devices-'));
  up = await makeUpgrade(work);
  v2md5 = await fileMd5(up.v2iso);
  mirror = await startMirror({ root: up.mirrorDir });
  v1iso = path.join(work, 'v1.iso');
  await xorrisoImage(up.v1, v1iso, 'rr');
  shared = up.parts - up.missing.length;
});
after(async () => {
  await detachAll();
  await mirror?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

const cacheDir = (): string => path.join(work, `cache-${n++}`);
const escaped = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** make-image of v2 with `scanArgs`, the test mirror holding only the parts v1 lacks: the output's MD5 is v2's. */
async function makeImage(scanArgs: string[], cache = cacheDir()): Promise<string> {
  mirror.reset();
  const out = path.join(work, 'out.iso');
  await rm(out, { force: true });
  const r = await runCli(['make-image', up.jigdo, '-o', out, '--mirror', `Parts=${mirror.url}`, '--cache-dir', cache, ...scanArgs]);
  assertOk(r);
  assert.equal(await fileMd5(out), v2md5, 'v2 byte-exact');
  assertOnlyMissingFetched(mirror, up);
  return r.stderr;
}

/** `missing --json --offline` of v2 with `--scan device`: the parts missing, and those found on the device. */
async function missingWith(device: string, cache: string): Promise<{ missing: number; fromDevice: number; stderr: string }> {
  const r = await runCli(['missing', up.jigdo, '--scan', device, '--offline', '--cache-dir', cache, '--json']);
  assert.equal(r.code, 0, describeRun(r));
  const json = JSON.parse(r.stdout) as { missing: number; fromImages: Array<{ image: string; parts: number }> };
  const fromDevice = json.fromImages.find((u) => u.image === device)?.parts ?? 0;
  return { missing: json.missing, fromDevice, stderr: r.stderr };
}

/**
 * A copy of v1.iso with other bytes in the files `rels` after their first KiB (same size, same listing, same first
 * block: only a checksum tells them apart).
 */
async function v1With(garbage: string[], name: string): Promise<string> {
  const image = path.join(work, name);
  await copyFile(v1iso, image);
  const extents = await reportLba(image);
  for (const rel of garbage) {
    const data = await readFile(path.join(up.v1, rel));
    bytesOf(`garbage ${rel}`, data.length - 1024).copy(data, 1024);
    await writeAt(image, extents.get(rel)!, data);
  }
  return image;
}

test('make-image --scan /dev/loopN (a disc in its drive): v2 byte-exact, the mirror sees only the parts v1 lacks', { skip }, async () => {
  for (const flavour of ['rr', 'udf-only'] as const) {
    const image = flavour === 'rr' ? v1iso : path.join(work, 'v1-udf.iso');
    if (flavour !== 'rr') {
      await udfBridge(up.v1, image);
      await dropIsoDescriptors(image);
    }
    const dev = await attachLoop(image);
    try {
      const cache = cacheDir();
      const stderr = await makeImage(['--scan', dev], cache);
      assert.match(stderr, new RegExp(`from ${escaped(path.basename(dev))}: ${shared} parts, `), stderr);
      // Nothing about the disc is kept in the hash index: the next disc in that drive has the same inode and times.
      const files = await indexFiles(path.join(cache, 'hash-index.jsonl'));
      assert.equal(files[dev], undefined, 'no hash index entry for the device');
    } finally {
      await detachLoop(dev);
    }
  }
});

test('--scan-deep /dev/loopN on a disc whose descriptors and directories are zeroed: found by their RsyncSum64', { skip }, async () => {
  const image = path.join(work, 'v1-zeroed.iso');
  await copyFile(v1iso, image);
  const firstData = Math.min(...[...(await reportLba(image)).values()].map((e) => e[0]!.offset));
  const fh = await open(image, 'r+');
  await fh.write(Buffer.alloc(firstData - 16 * 2048), 0, firstData - 16 * 2048, 16 * 2048);
  await fh.close();
  const dev = await attachLoop(image);
  try {
    const stderr = await makeImage(['--scan-deep', dev]);
    assert.match(stderr, new RegExp(`scan-deep: ${escaped(dev)}: \\d+ candidate places`), stderr);
  } finally {
    await detachLoop(dev);
  }
});

test('mount --scan /dev/loopN + cp: v2 byte-exact, status counts the parts read from the disc', { skip }, async () => {
  const dev = await attachLoop(v1iso);
  const m = await mountJigdo(up.jigdo, ['--scan', dev, '--mirror', `Parts=${mirror.url}`], { cacheDir: cacheDir() });
  try {
    mirror.reset();
    const name = (await readdir(m.mnt))[0]!;
    assert.equal(await fileMd5(m.file(name)), v2md5, 'mount + read: v2 byte-exact');
    assertOnlyMissingFetched(mirror, up);
    const st = (await m.status()) as { images: Array<{ parts: { fromImages: number }; fromImages: Array<{ image: string; parts: number }> }> };
    assert.equal(st.images[0]!.parts.fromImages, shared);
    assert.deepEqual(st.images[0]!.fromImages.map((u) => [u.image, u.parts]), [[dev, shared]]);
  } finally {
    await m.cleanup();
    await detachLoop(dev);
  }
});

test('serve --scan /dev/loopN: the image over HTTP byte-exact, its parts from the disc', { skip }, async () => {
  const dev = await attachLoop(v1iso);
  const server = await startServe([up.jigdo, '--scan', dev, '--mirror', `Parts=${mirror.url}`, '--cache-dir', cacheDir()]);
  try {
    mirror.reset();
    const got = await httpGet(`${server.url}${path.basename(up.v2iso)}`);
    assert.equal(got.status, 200, server.log());
    assert.equal(md5hex(got.body), v2md5, 'v2 byte-exact');
    assertOnlyMissingFetched(mirror, up);
    assert.equal((await server.status()).images[0]!.parts.byProvider.image, shared);
  } finally {
    assert.equal(await server.stop(), 0, server.log());
    await detachLoop(dev);
  }
});

test('another disc in the same drive, same cache: nothing learned about the first one is taken for it', { skip }, async () => {
  // The second disc: v1 with other bytes in three files, the same size and the same listing.
  const changed = ['pool/main/a/pkg0_1.0_amd64.deb', 'pool/main/e/pkg4_1.0_amd64.deb', `pool/contrib/${LONG_NAME}`];
  const other = await v1With(changed, 'v1-other.iso');
  const cache = cacheDir();
  let dev = await attachLoop(v1iso);
  try {
    const first = await missingWith(dev, cache);
    assert.deepEqual([first.missing, first.fromDevice], [up.missing.length, shared], first.stderr);
    const before = await stat(dev);
    await detachLoop(dev);
    dev = await attachLoop(other, dev); // the same /dev/loopN: the disc swapped in its drive
    const after = await stat(dev);
    assert.deepEqual([after.ino, after.rdev, after.size], [before.ino, before.rdev, before.size], 'stat cannot tell the discs apart');
    const second = await missingWith(dev, cache);
    assert.deepEqual([second.missing, second.fromDevice], [up.missing.length + changed.length, shared - changed.length], second.stderr);
    // And make-image from the second disc takes only its right parts: v2 byte-exact (the mirror has the rest).
    mirror.reset();
    const out = path.join(work, 'out-other.iso');
    const mirrorAll = await startMirror({ root: up.v2 });
    try {
      const r = await runCli(['make-image', up.jigdo, '-o', out, '--mirror', `Parts=${mirrorAll.url}`, '--cache-dir', cache, '--scan', dev]);
      assertOk(r);
      assert.equal(await fileMd5(out), v2md5, 'v2 byte-exact');
      // Their first KiB is right, so make-image took them unhashed at the paths the .jigdo names; the image checksum
      // caught them, and they were replaced from the mirror.
      assert.equal(r.stderr.match(new RegExp(`^jigdofs: ${escaped(dev)}: does not hold part \\S+ \\(\\d+ bytes\\): not used$`, 'gm'))?.length, changed.length, r.stderr);
    } finally {
      await mirrorAll.close();
    }
  } finally {
    await detachLoop(dev).catch(() => undefined);
  }
});

test('a regular user: a device it may not open is one line naming it and why; one in its group is read', { skip }, async () => {
  const A = userActor({ runtimeDir: true });
  const dev = await attachLoop(v1iso);
  const node = await stat(dev);
  try {
    await chmod(work, 0o755); // (A.share would put the mode back at exit, after the folder is gone)
    const args = ['missing', up.jigdo, '--scan', dev, '--offline', '--json'];
    const refused = await A.cli(args);
    assert.equal(refused.code, 0, describeRun(refused));
    assert.match(refused.stderr, new RegExp(`^jigdofs: scan: ${escaped(dev)}: cannot open it: permission denied \\(EACCES; a user reads a disc drive through its group, usually cdrom\\): not scanned$`, 'm'), describeRun(refused));
    assert.doesNotMatch(refused.stderr, /\n\s+at /, 'no stack trace');
    assert.equal((JSON.parse(refused.stdout) as { missing: number }).missing, up.parts);
    // A disc drive is the group cdrom's: here the user's own group stands for it.
    await chown(dev, 0, A.user!.gid);
    await chmod(dev, 0o640);
    const read = await A.cli(args);
    assert.equal(read.code, 0, describeRun(read));
    assert.equal((JSON.parse(read.stdout) as { missing: number }).missing, up.missing.length, describeRun(read));
  } finally {
    await chown(dev, node.uid, node.gid).catch(() => undefined);
    await chmod(dev, node.mode & 0o7777).catch(() => undefined);
    await detachLoop(dev);
    A.close();
  }
});
