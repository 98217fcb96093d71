/**
 * fuse's old fstab syntax (issue 13 item 4): `jigdofs#JIGDO MOUNTPOINT fuse OPTIONS 0 0`. mount(8) runs
 * mount.fuse3 for type `fuse`, which splits the source at `#` and runs `jigdofs JIGDO MOUNTPOINT -o OPTIONS`
 * through /bin/sh with mount(8)'s own PATH (not ours): so this test's set-up puts `jigdofs` (a symlink to
 * bin/jigdofs) in /sbin, and removes it after (whatever was there is put back).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { BIN, runCli } from '../helpers/cli.js';
import { buildFixtures, type FixtureSet } from '../helpers/fixtures.js';
import { fileMd5 } from '../helpers/hash.js';
import { forceUnmount, isMounted } from '../helpers/mount.js';
import { waitFor } from '../helpers/network.js';
import { pidAlive } from '../../src/util/pid.js';

const run = promisify(execFile);
const INSTALLED = '/sbin/jigdofs';
const SAVED = `${INSTALLED}.saved-by-jigdofs-test`;
let fx: FixtureSet;
let work: string;
let fstab: string;
const mnt = { auto: '', noauto: '' };

const fstabField = (p: string): string => p.replace(/[ \t\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);

before(async () => {
  fx = await buildFixtures();
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-fstab-legacy-'));
  if (await lstat(INSTALLED).then(() => true, () => false)) await rename(INSTALLED, SAVED);
  await symlink(BIN, INSTALLED);
  mnt.auto = path.join(work, 'mnt auto');
  mnt.noauto = path.join(work, 'mnt noauto');
  for (const m of Object.values(mnt)) await mkdir(m);
  const v = fx.variants['jf-md5-gzip'];
  const w = fx.variants['jte-sha256-bzip2'];
  const cache = path.join(work, 'cache');
  fstab = path.join(work, 'fstab');
  await writeFile(fstab, [
    `jigdofs#${fstabField(v.jigdo)} ${fstabField(mnt.auto)} fuse ro,nofail,scan=${v.partsDir},cache-dir=${cache} 0 0`,
    `jigdofs#${fstabField(w.jigdo)} ${fstabField(mnt.noauto)} fuse noauto,scan=${w.partsDir},cache_dir=${cache},offline 0 0`,
    '',
  ].join('\n'));
});

after(async () => {
  for (const m of Object.values(mnt)) if (m) await forceUnmount(m);
  await rm(INSTALLED, { force: true });
  if (await lstat(SAVED).then(() => true, () => false)) await rename(SAVED, INSTALLED);
  await rm(work, { recursive: true, force: true });
});

test('jigdofs#JIGDO in fstab (type fuse): mount -a -T and mount -T MOUNTPOINT mount exact images; umount(8) ends the daemon', async () => {
  await run('mount', ['-a', '-T', fstab]);
  assert.equal(await isMounted(mnt.auto), true);
  assert.equal(await isMounted(mnt.noauto), false, 'noauto is left alone by mount -a');
  assert.equal(await fileMd5(path.join(mnt.auto, 'image.iso')), fx.variants['jf-md5-gzip'].imageMd5);
  const status = await runCli(['status', mnt.auto, '--json']);
  assert.equal(status.code, 0, status.stderr);
  const { pid } = JSON.parse(status.stdout) as { pid: number };
  await run('umount', [mnt.auto]);
  await waitFor(() => !pidAlive(pid), 10_000, 'the daemon to end after umount(8)');

  await run('mount', ['-T', fstab, mnt.noauto]);
  const w = fx.variants['jte-sha256-bzip2'];
  assert.equal(await fileMd5(path.join(mnt.noauto, path.basename(w.image))), w.imageMd5);
  assert.equal((await runCli(['umount', mnt.noauto])).code, 0);
  assert.equal(await isMounted(mnt.noauto), false);
});

test('jigdofs JIGDO MOUNTPOINT -o with an unknown option or a wrong word: one line, exit 2, nothing mounted', async () => {
  const v = fx.variants['jf-md5-gzip'];
  const bad = await runCli([v.jigdo, mnt.auto, '-o', 'ro,bogus=1']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /"bogus=1" is not a jigdofs mount option/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  assert.equal(await isMounted(mnt.auto), false);
  // A mistyped command is one, with a suggestion: not a mount of a file named after it (the old code answered
  // "…/stauts: file not found", and wrote that to the log of the mount at the path).
  for (const [typo, meant] of [['mout', 'mount'], ['stauts', 'status'], ['umonut', 'umount']]) {
    const r = await runCli([typo!, mnt.auto]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`unknown command '${typo}'[\\s\\S]*Did you mean ${meant}\\?`));
  }
  const legacyWithOptions = await runCli(['nosuch.jigdo', mnt.auto, '-o', 'ro']); // mount.fuse's call: a mount, of a file not there
  assert.equal(legacyWithOptions.code, 1, legacyWithOptions.stderr);
  assert.match(legacyWithOptions.stderr, /nosuch\.jigdo/);
});
