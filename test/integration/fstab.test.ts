/**
 * An /etc/fstab line of type fuse.jigdofs (issue 13 item 4), through mount(8) itself: `mount -a -T FSTAB`
 * and `mount -T FSTAB MOUNTPOINT` run the helper /sbin/mount.fuse.jigdofs (bin/mount.fuse.jigdofs, installed
 * by this test's set-up as a symlink and removed after; whatever was there is put back). The image is then
 * byte-exact, `jigdofs status` and umount(8) work, `noauto` is honoured, and a wrong option is refused by
 * name with nothing mounted.
 */
import { after, before, describe, test } from 'node:test';
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
const HELPER = '/sbin/mount.fuse.jigdofs';
const SAVED = `${HELPER}.saved-by-jigdofs-test`;

let fx: FixtureSet;
let work: string;
let fstab: string;
const mnts: Record<'auto' | 'noauto' | 'bad', string> = { auto: '', noauto: '', bad: '' };

/** fstab escapes blanks in its fields as octal (\040), as in /proc/mounts. */
const fstabField = (p: string): string => p.replace(/[ \t\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);

before(async () => {
  fx = await buildFixtures();
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-fstab-'));
  if (await lstat(HELPER).then(() => true, () => false)) await rename(HELPER, SAVED);
  await symlink(path.join(path.dirname(BIN), 'mount.fuse.jigdofs'), HELPER);
  for (const k of Object.keys(mnts) as Array<keyof typeof mnts>) {
    mnts[k] = path.join(work, `mnt ${k}`); // a blank in the path: fstab's \040
    await mkdir(mnts[k]);
  }
  const v = fx.variants['jf-md5-gzip'];
  const w = fx.variants['jte-sha256-bzip2'];
  const cache = path.join(work, 'cache');
  fstab = path.join(work, 'fstab');
  await writeFile(fstab, [
    '# jigdofs test fstab',
    `${fstabField(v.jigdo)} ${fstabField(mnts.auto)} fuse.jigdofs ro,nofail,_netdev,scan=${v.partsDir},cache-dir=${cache},log-file=${path.join(work, 'auto.log')} 0 0`,
    `${fstabField(w.jigdo)} ${fstabField(mnts.noauto)} fuse.jigdofs noauto,scan=${w.partsDir},cache_dir=${cache},offline 0 0`,
    `${fstabField(v.jigdo)} ${fstabField(mnts.bad)} fuse.jigdofs noauto,scan=${v.partsDir},bogus=1 0 0`,
    '',
  ].join('\n'));
});

after(async () => {
  for (const m of Object.values(mnts)) if (m) await forceUnmount(m);
  await rm(HELPER, { force: true });
  if (await lstat(SAVED).then(() => true, () => false)) await rename(SAVED, HELPER);
  await rm(work, { recursive: true, force: true });
});

describe('an fstab line of type fuse.jigdofs', () => {
  test('mount -a -T mounts the auto line only; the image is exact; status and umount(8) work', async () => {
    await run('mount', ['-a', '-T', fstab]);
    assert.equal(await isMounted(mnts.auto), true);
    assert.equal(await isMounted(mnts.noauto), false, 'noauto is left alone by mount -a');
    assert.equal(await isMounted(mnts.bad), false);
    assert.equal(await fileMd5(path.join(mnts.auto, 'image.iso')), fx.variants['jf-md5-gzip'].imageMd5);
    const status = await runCli(['status', mnts.auto, '--json']);
    assert.equal(status.code, 0, status.stderr);
    const { pid } = JSON.parse(status.stdout) as { pid: number };
    await run('umount', [mnts.auto]);
    await waitFor(() => !pidAlive(pid), 10_000, 'the daemon to end after umount(8)');
    assert.equal(await isMounted(mnts.auto), false);
  });

  test('mount -T FSTAB MOUNTPOINT mounts a noauto line with its options (offline, cache_dir)', async () => {
    await run('mount', ['-T', fstab, mnts.noauto]);
    const w = fx.variants['jte-sha256-bzip2'];
    assert.equal(await fileMd5(path.join(mnts.noauto, path.basename(w.image))), w.imageMd5);
    assert.equal((await runCli(['umount', mnts.noauto])).code, 0);
    assert.equal(await isMounted(mnts.noauto), false);
  });

  test('an option jigdofs does not know fails the mount, naming it; nothing is mounted', async () => {
    const failed = await run('mount', ['-T', fstab, mnts.bad]).then(() => undefined, (e: { code: number; stderr: string }) => e);
    assert.ok(failed, 'mount succeeded');
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /"bogus=1" is not a jigdofs mount option/);
    assert.equal(await isMounted(mnts.bad), false);
  });
});
