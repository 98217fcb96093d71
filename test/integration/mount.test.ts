/**
 * Real FUSE mounts through the CLI (the daemon is a child process): the mounted image must be
 * byte-identical to the image jigdo-file/xorriso made, whatever tool reads it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildFixtures, type FixtureSet } from '../helpers/fixtures.js';
import { assertCleanFailure, BIN } from '../helpers/cli.js';
import { forceUnmount, isMounted, mountJigdo, type TestMount } from '../helpers/mount.js';
import { runCli } from '../helpers/cli.js';
import { fileMd5, md5hex as md5 } from '../helpers/hash.js';
import { pidAlive } from '../../src/util/pid.js';
import { waitFor } from '../helpers/network.js';
import { rootActor, userActor, type Actor } from '../helpers/actor.js';
import { giveTo } from '../helpers/test-user.js';

const run = promisify(execFile);

/** A seeded PRNG (mulberry32), so a failing offset can be reproduced. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let fx: FixtureSet;
let work: string;

before(async () => {
  fx = await buildFixtures();
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-mount-test-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

/**
 * Who mounts and reads: root, and a real unprivileged user (made by the test set-up, test/helpers/test-user.ts)
 * with and without XDG_RUNTIME_DIR. The cases below run once per actor; the user's mount is private, so
 * every read of it goes through the actor too.
 */
const ACTORS: Array<{ label: string; make: () => Actor }> = [
  { label: 'root', make: rootActor },
  { label: 'a regular user', make: () => userActor({ runtimeDir: true }) },
  { label: 'a regular user without XDG_RUNTIME_DIR', make: () => userActor({ runtimeDir: false }) },
];
/** The slower cases run as root and as the harder of the two users only. */
const FEW_ACTORS = [ACTORS[0]!, ACTORS[2]!];

const mountAs = (A: Actor, jigdo: string, args: string[]): Promise<TestMount> => mountJigdo(jigdo, args, { env: A.env, user: A.user });

for (const { label, make } of ACTORS) {
  describe(`mounted ISO as ${label} (jigdo-file md5/gzip template, parts found by --scan)`, () => {
    let A: Actor;
    let m: TestMount;
    let original: Buffer;
    let own: string;
    const name = 'image.iso';
    before(async () => {
      A = make();
      A.share(fx.dir);
      own = A.tempDir('jigdofs-mount-own-');
      const v = fx.variants['jf-md5-gzip'];
      original = await readFile(v.image);
      m = await mountAs(A, v.jigdo, ['--scan', v.partsDir]);
    });
    after(async () => {
      await m?.cleanup();
      A?.close();
      if (own) await rm(own, { recursive: true, force: true });
    });

    test('shows one read-only file with the exact size', async () => {
      assert.deepEqual(await A.fs.readdir(m.mnt), [name]);
      const st = await A.fs.stat(m.file(name));
      assert.equal(st.size, original.length);
      assert.equal(st.mode & 0o777, 0o444);
      assert.ok(st.isFile());
      await assert.rejects(A.fs.open(m.file(name), 'r+'), /EROFS|EACCES/);
      const ls = await A.run('ls', ['-l', m.mnt]);
      assert.match(ls, new RegExp(`-r--r--r-- .* ${original.length} .* ${name}`));
      const du = await A.run('du', ['-b', m.file(name)]);
      assert.equal(Number(du.split('\t')[0]), original.length);
    });

    test('cp and dd bs=1M give the image checksum', async () => {
      const copy = path.join(own, 'copy.iso');
      await A.run('cp', [m.file(name), copy]);
      assert.equal(await fileMd5(copy), md5(original));
      assert.equal(md5(await A.runBuffer('dd', [`if=${m.file(name)}`, 'bs=1M', 'status=none'])), md5(original));
    });

    test('random dd skip= reads match the original', async () => {
      const rand = prng(42);
      const blocks = Math.floor(original.length / 4096);
      for (let i = 0; i < 25; i++) {
        const skip = Math.floor(rand() * blocks);
        const count = 1 + Math.floor(rand() * 64);
        const out = await A.runBuffer('dd', [`if=${m.file(name)}`, 'bs=4096', `skip=${skip}`, `count=${count}`, 'status=none']);
        assert.ok(out.equals(original.subarray(skip * 4096, (skip + count) * 4096)), `dd skip=${skip} count=${count}`);
      }
    });

    test('8 concurrent readers at random offsets get the right bytes', async () => {
      const readers = Array.from({ length: 8 }, async (_, r) => {
        const rand = prng(1000 + r);
        const fh = await A.fs.open(m.file(name), 'r');
        try {
          for (let i = 0; i < 40; i++) {
            const offset = Math.floor(rand() * original.length);
            const length = 1 + Math.floor(rand() * 300_000);
            const buf = Buffer.alloc(length);
            const { bytesRead } = await fh.read(buf, 0, length, offset);
            const want = original.subarray(offset, offset + length);
            assert.equal(bytesRead, want.length);
            assert.ok(buf.subarray(0, bytesRead).equals(want), `reader ${r} at ${offset}+${length}`);
          }
        } finally {
          await fh.close();
        }
      });
      await Promise.all(readers);
    });

    test('isoinfo lists the ISO files', async () => {
      const fromMount = await A.run('isoinfo', ['-R', '-l', '-i', m.file(name)]);
      const fromOriginal = (await run('isoinfo', ['-R', '-l', '-i', fx.variants['jf-md5-gzip'].image])).stdout;
      assert.equal(fromMount, fromOriginal);
      assert.match(fromMount, /c-200k\.bin/);
    });

    test('status reports parts and bytes served', async () => {
      const s = (await m.status()) as { images: Array<{ name: string; size: number; parts: { total: number; verified: number; missing: number }; bytesServed: number }> };
      const img = s.images[0]!;
      assert.equal(img.name, name);
      assert.equal(img.size, original.length);
      assert.ok(img.parts.total > 0);
      assert.equal(img.parts.verified, img.parts.total);
      assert.equal(img.parts.missing, 0);
      assert.ok(img.bytesServed >= original.length);
    });

    test('umount unmounts and stops the daemon', async () => {
      const pid = await m.pid();
      const r = await m.umount();
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await isMounted(m.mnt), false);
      await waitFor(() => !pidAlive(pid), 5000, 'the daemon to end');
    });
  });
}

for (const { label, make } of FEW_ACTORS) {
  describe(`every template kind mounts byte-exactly as ${label}`, () => {
    let A: Actor;
    before(() => {
      A = make();
      A.share(fx.dir);
    });
    after(() => A?.close());
    for (const name of ['jf-sha256-gzip', 'jf-md5-bzip2', 'jf-sha256-bzip2', 'jte-md5-gzip', 'jte-sha256-bzip2', 'nomatch'] as const) {
      test(name, async () => {
        const v = fx.variants[name];
        const m = await mountAs(A, v.jigdo, ['--scan', v.partsDir]);
        try {
          const [file] = await A.fs.readdir(m.mnt);
          assert.equal(md5(await A.runBuffer('dd', [`if=${m.file(file!)}`, 'bs=1M', 'status=none'])), v.imageMd5);
        } finally {
          await m.cleanup();
        }
      });
    }
  });
}

describe('ext4 image distributed through jigdo, loop-mounted from the mount', () => {
  for (const args of [[], ['--direct-io']]) {
    test(`every file inside matches its source${args.length ? ` (${args.join(' ')})` : ''}`, async () => {
      const v = fx.variants.ext4;
      const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir, ...args]);
      const loopMnt = path.join(work, 'ext4-loop');
      await mkdir(loopMnt, { recursive: true });
      try {
        await run('mount', ['-o', 'loop,ro', m.file('ext4.img'), loopMnt]);
        try {
          for (const f of fx.files) {
            const inside = await readFile(path.join(loopMnt, f.path));
            assert.equal(md5(inside), f.md5, f.path);
          }
        } finally {
          await run('umount', [loopMnt]);
        }
      } finally {
        await m.cleanup();
      }
    });
  }
});

/** The image's `reads` in a mount's status: FUSE read requests the daemon answered. */
async function readsServed(m: TestMount): Promise<number> {
  const s = (await m.status()) as { images: Array<{ reads: number }> };
  return s.images[0]!.reads;
}

for (const { label, make } of FEW_ACTORS) {
  describe(`--direct-io, mounted by ${label}`, () => {
    let A: Actor;
    let own: string;
    before(() => {
      A = make();
      A.share(fx.dir);
      own = A.tempDir('jigdofs-direct-own-');
    });
    after(async () => {
      A?.close();
      if (own) await rm(own, { recursive: true, force: true });
    });

    test('every read(2) reaches the daemon as it was made (no page cache, no kernel read-ahead); cp, dd and small reads are byte-exact', async () => {
      const v = fx.variants['jf-md5-gzip'];
      const original = await readFile(v.image);
      const file = (m: TestMount) => m.file('image.iso');
      // 16 reads of 4 KiB in a stretch no read touched yet: the default mount's page cache reads ahead
      // (one or two requests), a direct one gets all 16.
      const smallReads = async (m: TestMount, skip: number): Promise<number> => {
        const before = await readsServed(m);
        const out = await A.runBuffer('dd', [`if=${file(m)}`, 'bs=4096', `skip=${skip}`, 'count=16', 'status=none']);
        assert.ok(out.equals(original.subarray(skip * 4096, (skip + 16) * 4096)), `dd skip=${skip} count=16`);
        return (await readsServed(m)) - before;
      };
      const cached = await mountAs(A, v.jigdo, ['--scan', v.partsDir]);
      try {
        assert.ok((await smallReads(cached, 64)) < 16, 'the default mount reads ahead through the page cache');
        assert.equal((await cached.status()).directIo, false);
      } finally {
        await cached.cleanup();
      }
      const direct = await mountAs(A, v.jigdo, ['--scan', v.partsDir, '--direct-io']);
      try {
        assert.equal((await direct.status()).directIo, true);
        assert.match(await A.cli(['status', direct.mnt]).then((r) => r.stdout), /, direct I\/O\n/);
        assert.equal(await smallReads(direct, 64), 16);
        assert.equal(await smallReads(direct, 64), 16, 'a re-read is not served from the page cache either');
        const copy = path.join(own, 'copy.iso');
        await A.run('cp', [file(direct), copy]);
        assert.equal(await fileMd5(copy), md5(original));
        assert.equal(md5(await A.runBuffer('dd', [`if=${file(direct)}`, 'bs=1M', 'status=none'])), md5(original));
        assert.equal(md5(await A.runBuffer('dd', [`if=${file(direct)}`, 'bs=1000', 'status=none'])), md5(original));
      } finally {
        await direct.cleanup();
      }
    });
  });
}

for (const { label, make } of FEW_ACTORS) {
  describe(`a part no source has, mounted by ${label}`, () => {
    test('gives EIO for its bytes only, one log line, and status counts it', async () => {
      const A = make();
      A.share(fx.dir);
      const v = fx.variants['jf-md5-gzip'];
      const own = A.tempDir('jigdofs-parts-minus-one-');
      const parts = path.join(own, 'parts');
      await cp(v.partsDir, parts, { recursive: true });
      const victim = fx.files.find((f) => f.path.endsWith('c-200k.bin'))!;
      await rm(path.join(parts, path.relative('parts', victim.path)));
      await rm(path.join(parts, 'extra', 'c-200k-copy.bin')); // the same bytes under another name
      if (A.user) giveTo(A.user, own);
      const original = await readFile(v.image);
      const at = original.indexOf(await readFile(victim.absPath));
      assert.ok(at > 0);
      const m = await mountAs(A, v.jigdo, ['--scan', parts]);
      try {
        const fh = await A.fs.open(m.file('image.iso'), 'r');
        try {
          const buf = Buffer.alloc(4096);
          await assert.rejects(fh.read(buf, 0, 4096, at + 8192), /EIO/);
          const before = Buffer.alloc(4096);
          await fh.read(before, 0, 4096, 0);
          assert.ok(before.equals(original.subarray(0, 4096)));
          const tail = original.length - 4096;
          const end = Buffer.alloc(4096);
          await fh.read(end, 0, 4096, tail);
          assert.ok(end.equals(original.subarray(tail)));
        } finally {
          await fh.close();
        }
        const cpResult = await A.run('cp', [m.file('image.iso'), path.join(own, 'broken.iso')]).then(() => 'ok', (e: Error) => e.message);
        assert.match(cpResult, /Input\/output error/);
        const s = (await m.status()) as { images: Array<{ parts: { missing: number }; recentErrors: string[] }> };
        assert.equal(s.images[0]!.parts.missing, 1);
        const log = await m.log();
        const lines = log.split('\n').filter((l) => l.includes('not available'));
        assert.equal(lines.length, 1, log);
        assert.match(lines[0]!, new RegExp(`part [A-Za-z0-9_-]{22} \\(${victim.size} bytes, at image offset ${at}\\)`));
      } finally {
        await m.cleanup();
        A.close();
        await rm(own, { recursive: true, force: true });
      }
    });
  });
}


describe('lifecycle', () => {
  test('foreground mount unmounts cleanly on SIGTERM and SIGINT', async () => {
    const v = fx.variants['jf-md5-gzip'];
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      const mnt = path.join(work, `fg-${sig}`);
      await mkdir(mnt, { recursive: true });
      const child = spawn(process.execPath, [BIN, 'mount', '-f', v.jigdo, mnt, '--scan', v.partsDir, '--cache-dir', path.join(work, 'cache')], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      try {
        await waitFor(async () => (await stat(path.join(mnt, 'image.iso')).catch(() => undefined))?.size === v.imageSize, 30_000, 'the image file at its full size');
        assert.equal(await fileMd5(path.join(mnt, 'image.iso')), v.imageMd5);
        child.kill(sig);
        assert.equal(await exited, 0, stderr);
        assert.equal(await isMounted(mnt), false);
        assert.match(stderr, /unmounted/);
      } finally {
        child.kill('SIGKILL');
        await forceUnmount(mnt);
      }
    }
  });

  test('a mount left stale by kill -9 is cleared by the next mount', async () => {
    const v = fx.variants['jf-md5-gzip'];
    const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir]);
    try {
      const pid = await m.pid();
      process.kill(pid, 'SIGKILL');
      await waitFor(async () => (await stat(m.mnt).then(() => 'ok', (e: NodeJS.ErrnoException) => e.code)) === 'ENOTCONN', 5000, 'the mount to go stale');
      // (The code before: "no jigdofs daemon for MNT (ECONNREFUSED)".)
      assertCleanFailure(await runCli(['status', m.mnt]), m.mnt, new RegExp(`: its daemon \\(pid ${pid}\\) is gone: the mount is stale \\(jigdofs umount `));
      const again = await mountJigdo(v.jigdo, ['--scan', v.partsDir], { mnt: m.mnt, cacheDir: m.cacheDir });
      try {
        assert.equal(await fileMd5(again.file('image.iso')), v.imageMd5);
        assert.equal((await again.umount()).code, 0);
      } finally {
        await again.cleanup(); // its own folder (the log)
      }
    } finally {
      await m.cleanup();
    }
  });

  test('right after a kill -9 (the kernel still answers a stat of the mount from its cache) the next mount clears it too', async () => {
    const v = fx.variants['jf-md5-gzip'];
    const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir]);
    try {
      await stat(m.file('image.iso')); // attributes cached
      const pid = await m.pid();
      process.kill(pid, 'SIGKILL');
      await waitFor(() => !pidAlive(pid), 5000, 'the daemon to die');
      // The old code took the mount for served for ~5 s: "its daemon (pid …) has no control socket here".
      const again = await mountJigdo(v.jigdo, ['--scan', v.partsDir], { mnt: m.mnt, cacheDir: m.cacheDir });
      try {
        assert.equal(await fileMd5(again.file('image.iso')), v.imageMd5);
        assert.equal((await again.umount()).code, 0);
      } finally {
        await again.cleanup();
      }
    } finally {
      await m.cleanup();
    }
  });

  test('mount --image NAME shows that [Image] only (the option was taken and ignored); without it, all of them', async () => {
    const v = fx.variants['jf-md5-gzip'];
    const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-two-images-'));
    try {
      // The same image twice under two names: a second [Image] section with its own Filename.
      const text = await readFile(v.jigdo, 'utf8');
      const section = /\[Image\]\n[^[]*/.exec(text)![0];
      await cp(v.template, path.join(dir, path.basename(v.template)));
      const jigdo = path.join(dir, 'two.jigdo');
      await writeFile(jigdo, text.replace(section, `${section}${section.replace(/^Filename=.*$/m, 'Filename=copy.iso')}`));
      const all = await mountJigdo(jigdo, ['--scan', v.partsDir]);
      try {
        assert.deepEqual((await readdir(all.mnt)).sort(), ['copy.iso', 'image.iso']);
      } finally {
        await all.cleanup();
      }
      // Two of one name: the second is image-2.iso (the code before: image.iso.2, no longer an .iso).
      const same = path.join(dir, 'same.jigdo');
      await writeFile(same, text.replace(section, `${section}${section}`));
      const both = await mountJigdo(same, ['--scan', v.partsDir]);
      try {
        assert.deepEqual((await readdir(both.mnt)).sort(), ['image-2.iso', 'image.iso']);
        assert.equal(await fileMd5(both.file('image-2.iso')), v.imageMd5);
      } finally {
        await both.cleanup();
      }
      const one = await mountJigdo(jigdo, ['--scan', v.partsDir, '--image', 'copy.iso']);
      try {
        assert.deepEqual(await readdir(one.mnt), ['copy.iso']);
        assert.equal(await fileMd5(one.file('copy.iso')), v.imageMd5);
      } finally {
        await one.cleanup();
      }
      await mkdir(path.join(dir, 'mnt'));
      const none = await runCli(['mount', jigdo, path.join(dir, 'mnt'), '--image', 'nosuch.iso']);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /has no image named "nosuch\.iso" \(it has: image\.iso, copy\.iso\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a --scan path or --local folder that is not there is said on the terminal of a background mount (it went to the log only)', async () => {
    const v = fx.variants['jf-md5-gzip'];
    const m = await mountJigdo(v.jigdo, ['--scan', '/nonexistent-scan', '--scan', v.partsDir, '--local', 'Parts=/nonexistent-local']);
    try {
      assert.match(m.mountResult.stderr, /^jigdofs: --scan \/nonexistent-scan: no such file or folder$/m);
      assert.match(m.mountResult.stderr, /^jigdofs: --local Parts=\/nonexistent-local: no such folder$/m);
      assert.equal(await fileMd5(m.file('image.iso')), v.imageMd5, 'the mount goes on with the sources that are there');
    } finally {
      await m.cleanup();
    }
    // make-image says it of the --local folder too (its scan says it of --scan paths itself).
    const r = await runCli(['make-image', v.jigdo, '-o', path.join(tmpdir(), `jigdofs-missing-src-${process.pid}.iso`), '--scan', v.partsDir, '--local', 'Parts=/nonexistent-local', '--force']);
    await rm(path.join(tmpdir(), `jigdofs-missing-src-${process.pid}.iso`), { force: true });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^jigdofs: --local Parts=\/nonexistent-local: no such folder$/m);
  });

  test('a --log-file that cannot be opened: one line naming it as the log file (the old code printed open\'s raw error)', async () => {
    const v = fx.variants['jf-md5-gzip'];
    const mnt = await mkdtemp(path.join(tmpdir(), 'jigdofs-logfile-'));
    try {
      const r = await runCli(['mount', v.jigdo, mnt, '--log-file', '/nonexistent-folder/x.log']);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, "jigdofs: /nonexistent-folder/x.log: cannot open the daemon's log file (ENOENT)\n");
      assert.equal(await isMounted(mnt), false);
    } finally {
      await rm(mnt, { recursive: true, force: true });
    }
  });

  test('a second mount on a live mountpoint is refused; a failed mount leaves nothing behind', async () => {
    const v = fx.variants['jf-md5-gzip'];
    const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir]);
    try {
      const second = await runCli(['mount', v.jigdo, m.mnt, '--cache-dir', m.cacheDir]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /already mounted/);
      assert.equal(await fileMd5(m.file('image.iso')), v.imageMd5); // the first mount is untouched
    } finally {
      await m.cleanup();
    }
    const empty = path.join(work, 'never-mounted');
    await mkdir(empty, { recursive: true });
    const bad = await runCli(['mount', path.join(work, 'no-such.jigdo'), empty, '--cache-dir', path.join(work, 'cache')]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^jigdofs: .*no-such\.jigdo.*not found/m);
    assert.equal(await isMounted(empty), false);
    const noDir = await runCli(['mount', v.jigdo, path.join(work, 'missing-dir'), '--cache-dir', path.join(work, 'cache')]);
    assert.equal(noDir.code, 1);
    assert.match(noDir.stderr, /does not exist/);
  });

  test('umount of something that is not mounted fails with a clear message', async () => {
    const r = await runCli(['umount', work]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /nothing is mounted/);
  });
});
