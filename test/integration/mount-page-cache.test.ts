/**
 * A default mount drops the kernel's pages of its image behind a long sequential reader (fuse/drop-behind.ts): after
 * a whole-image read the page cache holds at most the last few tens of MiB of it, not all of it; a short read keeps
 * what it read; a `umount` right after the read is not refused as busy (the drops open the image through the mount).
 * As root and as a regular user, on a jigdo-file image of ~150 MB. Residency by util-linux's `fincore` (mincore(2) or
 * cachestat(2)), run as whoever mounted: a private mount answers no one else.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DROP_KEEP_BEHIND, DROP_MIN_STREAM } from '../../src/fuse/drop-behind.js';
import { rootActor, userActor, type Actor } from '../helpers/actor.js';
import { mountJigdo, type TestMount } from '../helpers/mount.js';

const run = promisify(execFile);
const random = (n: number, seed: number): Buffer => createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16)).update(Buffer.alloc(n));
const MiB = 1 << 20;

let work: string;
let jigdo: string;
let parts: string;
let imageMd5: string;
const NAME = 'big.iso';
const ZEROS = 150 * MiB; // from the template (one zlib run): the mount reads it fast, no part files needed

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-drop-behind-'));
  parts = path.join(work, 'p');
  await mkdir(parts);
  const part = random(3 * MiB, 1);
  await writeFile(path.join(parts, 'part.bin'), part);
  const image = path.join(work, NAME);
  const fh = await open(image, 'w');
  await fh.write(random(MiB, 2));
  await fh.write(part);
  await fh.truncate(4 * MiB + ZEROS);
  await fh.write(random(MiB, 3), 0, MiB, 4 * MiB + ZEROS);
  await fh.close();
  jigdo = path.join(work, 'big.jigdo');
  await run('jigdo-file', ['make-template', '-r', 'quiet', '--force', '--no-cache', `--image=${image}`, `--jigdo=${jigdo}`, `--template=${work}/big.template`, `${parts}//`], { cwd: work });
  const hash = createHash('md5');
  for await (const chunk of createReadStream(image)) hash.update(chunk as Buffer);
  imageMd5 = hash.digest('hex');
  await rm(image);
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

for (const make of [rootActor, () => userActor({ runtimeDir: false })]) {
  describe('a default mount drops its image from the page cache behind a long sequential read', () => {
    let A: Actor;
    const mounts: TestMount[] = [];
    before(() => {
      A = make();
      A.share(work);
    });
    after(async () => {
      for (const m of mounts) await m.cleanup();
      A.close();
    });
    const mount = async (args: string[] = []): Promise<TestMount> => {
      const m = await mountJigdo(jigdo, ['--scan', parts, ...args], { env: A.env, user: A.user });
      mounts.push(m);
      return m;
    };
    const resident = async (file: string): Promise<number> => Number((await A.run('fincore', ['--bytes', '--noheadings', '--output', 'RES', file])).trim());

    test(`whole-image reads, twice: the image is right, at most ${DROP_MIN_STREAM / MiB} MiB of it stays in memory (${(DROP_MIN_STREAM + DROP_KEEP_BEHIND) / MiB} after the second), and umount is not busy`, async () => {
      const m = await mount();
      const file = m.file(NAME);
      // Twice: a second whole read starts where the first did, and is a stream of its own. Its reads stop reaching the
      // daemon where the first left pages cached (the last DROP_KEEP_BEHIND or so), so what stays behind it is up to
      // twice that.
      for (const [pass, most] of [['first', DROP_MIN_STREAM], ['second', DROP_MIN_STREAM + DROP_KEEP_BEHIND]] as const) {
        assert.equal((await A.run('md5sum', [file])).split(' ')[0], imageMd5);
        // The last drop may still be under way as md5sum ends: given up to 5 s.
        let res = await resident(file);
        for (let i = 0; i < 50 && res > most; i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          res = await resident(file);
        }
        assert.ok(res > 0 && res <= most, `resident after the ${pass} read: ${res} bytes of ${ZEROS + 5 * MiB}`);
      }
      const r = await m.umount();
      assert.equal(r.code, 0, r.stderr);
    });

    // FUSE's threads hand the kernel's read-ahead requests over out of order, further apart the larger its window: a
    // common tuning for FUSE file systems raises it, and the reader's streams then must still be told apart from
    // lone reads by the mount's read-ahead (fuse/kernel-read-ahead.ts). Only root may write sysfs.
    test('with the kernel\'s read-ahead for the mount raised to 1 MiB, a whole-image read still drops behind it', { skip: process.getuid?.() !== 0 && 'raising read_ahead_kb needs root' }, async () => {
      const m = await mount();
      const file = m.file(NAME);
      const device = (await A.run('mountpoint', ['-d', m.mnt])).trim(); // as the actor: a private mount answers no one else
      await writeFile(`/sys/class/bdi/${device}/read_ahead_kb`, '1024');
      assert.equal((await A.run('md5sum', [file])).split(' ')[0], imageMd5);
      let res = await resident(file);
      for (let i = 0; i < 50 && res > DROP_MIN_STREAM; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        res = await resident(file);
      }
      assert.ok(res > 0 && res <= DROP_MIN_STREAM, `resident after the read: ${res} bytes of ${ZEROS + 5 * MiB}`);
      const r = await m.umount();
      assert.equal(r.code, 0, r.stderr);
    });

    test('a short sequential read keeps every page it read', async () => {
      const m = await mount();
      const file = m.file(NAME);
      await A.run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', `count=${DROP_MIN_STREAM / MiB / 2}`, 'status=none']);
      const res = await resident(file);
      assert.ok(res >= DROP_MIN_STREAM / 2, `resident after reading ${DROP_MIN_STREAM / 2} bytes: ${res}`);
      const r = await m.umount();
      assert.equal(r.code, 0, r.stderr);
    });
  });
}
