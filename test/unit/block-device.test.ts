/** A block device's medium (`--scan /dev/sr0`): read from sysfs, a partition's from its disk, none without diskseq. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HashIndex } from '../../src/sources/hash-index.js';
import { NoDiskSeqError, blockDeviceMedium } from '../../src/util/block-device.js';

let sys: string;
before(async () => {
  sys = await mkdtemp(path.join(tmpdir(), 'jigdofs-sysfs-'));
  const disk = path.join(sys, 'devices', 'sr0');
  await mkdir(path.join(disk, 'sr0p1'), { recursive: true });
  await writeFile(path.join(disk, 'size'), '2097152\n');
  await writeFile(path.join(disk, 'diskseq'), '17\n');
  await writeFile(path.join(disk, 'sr0p1', 'size'), '2048\n');
  await writeFile(path.join(disk, 'sr0p1', 'partition'), '1\n');
  const old = path.join(sys, 'devices', 'old');
  await mkdir(old);
  await writeFile(path.join(old, 'size'), '8\n');
  await mkdir(path.join(sys, 'block'));
  await symlink(disk, path.join(sys, 'block', '11:0'));
  await symlink(path.join(disk, 'sr0p1'), path.join(sys, 'block', '11:1'));
  await symlink(old, path.join(sys, 'block', '11:2'));
});
after(() => rm(sys, { recursive: true, force: true }));

const rdev = (minor: number): number => (11 << 8) | minor;

test('size and medium from sysfs; a partition has its disk\'s medium; no diskseq: NoDiskSeqError', async () => {
  assert.deepEqual(await blockDeviceMedium(rdev(0), path.join(sys, 'block')), { size: 2097152 * 512, medium: '11:0#17' });
  assert.deepEqual(await blockDeviceMedium(rdev(1), path.join(sys, 'block')), { size: 2048 * 512, medium: '11:1#17' });
  await assert.rejects(blockDeviceMedium(rdev(2), path.join(sys, 'block')), NoDiskSeqError);
});

test('the hash index neither records nor trusts anything about a device\'s medium', async () => {
  const index = await HashIndex.load(undefined);
  const id = { size: 1 << 20, mtimeMs: 1, ctimeMs: 1, ino: 5, dev: 6, medium: '11:0#17' };
  index.set('/dev/sr0', id, 'md5', 'SUM', 32768, 3000);
  assert.equal(index.get('/dev/sr0', id, 'md5', 32768, 3000), undefined);
  assert.equal(index.previous('/dev/sr0', 'md5', 32768, 3000), undefined, 'nothing recorded');
  const file = { ...id, medium: undefined };
  index.set('/srv/old.iso', file, 'md5', 'SUM', 32768, 3000);
  assert.equal(index.get('/srv/old.iso', file, 'md5', 32768, 3000), 'SUM', 'a file is recorded as before');
});
