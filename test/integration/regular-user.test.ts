/**
 * jigdofs as a regular (non-root) user, with and without XDG_RUNTIME_DIR (issue 13 item 2): mount with the
 * defaults (no --cache-dir, no --log-file), status, umount, make-image and serve, each run as a real
 * unprivileged user made by the test set-up (test/helpers/test-user.ts). The cache and the logs default to
 * the user's own ~/.cache/jigdofs, private to it; the control sockets to its XDG_RUNTIME_DIR, or else to
 * its own /tmp/jigdofs-<uid>. (mount.test.ts runs its mount cases as this user too.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { userActor, type Actor } from '../helpers/actor.js';
import { assertCleanFailure, assertOk, describeRun, runCli } from '../helpers/cli.js';
import { buildFixtures, type FixtureSet } from '../helpers/fixtures.js';
import { fileMd5, md5hex } from '../helpers/hash.js';
import { isMounted, listenSilently, type SilentListener } from '../helpers/mount.js';
import { httpGet, startServe } from '../helpers/serve.js';
import { pidAlive } from '../../src/util/pid.js';
import { controlSocketPath } from '../../src/fuse/control-files.js';
import { waitFor } from '../helpers/network.js';

let fx: FixtureSet;
before(async () => {
  fx = await buildFixtures();
});

/** The folder the user's control sockets must be in: its runtime dir, else its own folder in /tmp. */
const controlDirOf = (A: Actor): string => (A.env!.XDG_RUNTIME_DIR ? path.join(A.env!.XDG_RUNTIME_DIR, 'jigdofs') : path.join(tmpdir(), `jigdofs-${A.user!.uid}`));

/** `p` exists, belongs to the user and has exactly `mode`. */
async function assertPrivate(A: Actor, p: string, mode: number): Promise<void> {
  const st = await stat(p);
  assert.equal(st.uid, A.user!.uid, `${p} belongs to uid ${st.uid}, not the user`);
  assert.equal((st.mode & 0o777).toString(8), mode.toString(8), `${p} mode`);
}

for (const runtimeDir of [true, false]) {
  describe(`as a regular user${runtimeDir ? '' : ' without XDG_RUNTIME_DIR'}`, () => {
    let A: Actor;
    let own: string;
    before(() => {
      A = userActor({ runtimeDir });
      A.share(fx.dir);
      own = A.tempDir('jigdofs-user-own-');
    });
    after(async () => {
      A?.close();
      if (own) await rm(own, { recursive: true, force: true });
    });

    test('mount with the defaults, status, umount: cache, log and socket are the user\'s own', async () => {
      const v = fx.variants['jf-md5-gzip'];
      const mnt = path.join(own, 'mnt');
      await A.run('mkdir', [mnt]);
      const mounted = await A.cli(['mount', v.jigdo, mnt, '--scan', v.partsDir]);
      assertOk(mounted);
      try {
        assert.equal(md5hex(await A.runBuffer('cat', [path.join(mnt, 'image.iso')])), v.imageMd5);
        const status = await A.cli(['status', mnt, '--json']);
        assertOk(status);
        const { pid, images } = JSON.parse(status.stdout) as { pid: number; images: Array<{ parts: { verified: number; total: number } }> };
        assert.equal(images[0]!.parts.verified, images[0]!.parts.total);
        const sockets = await readdir(controlDirOf(A));
        assert.equal(sockets.filter((f) => f.endsWith('.sock')).length, 1, `one control socket in ${controlDirOf(A)}: ${sockets.join(' ')}`);
        await assertPrivate(A, controlDirOf(A), 0o700);
        const cache = path.join(A.user!.home, '.cache', 'jigdofs');
        await assertPrivate(A, cache, 0o700);
        const log = (await readdir(path.join(cache, 'logs'))).find((f) => f.includes(`${path.basename(own)}_mnt.`));
        assert.ok(log, 'the daemon logs under the user\'s cache');
        await assertPrivate(A, path.join(cache, 'logs', log), 0o600);
        const unmounted = await A.cli(['umount', mnt]);
        assertOk(unmounted);
        assert.equal(await isMounted(mnt), false);
        await waitFor(() => !pidAlive(pid), 5000, 'the daemon to end');
      } finally {
        if (await isMounted(mnt)) await A.run('fusermount', ['-uz', mnt]);
      }
    });

    // (mount-hostile.test.ts has this as root.)
    test('umount of a mount whose daemon takes the request and never answers: one line, unmounted, the daemon ended', { skip: !runtimeDir && 'once is enough' }, async () => {
      const v = fx.variants['jf-md5-gzip'];
      const mnt = path.join(own, 'mnt-silent');
      await A.run('mkdir', [mnt]);
      assertOk(await A.cli(['mount', v.jigdo, mnt, '--scan', v.partsDir]));
      let silent: SilentListener | undefined;
      try {
        const status = await A.cli(['status', mnt, '--json']);
        assertOk(status);
        const { pid } = JSON.parse(status.stdout) as { pid: number };
        // The user's socket name leads to a listener (the user's, as umount checks) that takes requests and never answers.
        silent = await listenSilently(controlSocketPath(mnt, controlDirOf(A)), A.user);
        const r = await A.cli(['umount', mnt], { env: { ...A.env, JIGDOFS_UMOUNT_WAIT: '1' } });
        assertOk(r);
        assert.equal(r.stderr, `jigdofs: ${mnt}: no answer from its jigdofs daemon in 1 s; unmounting with fusermount\n`);
        assert.ok(silent.taken() >= 1, 'the request went to the silent listener');
        assert.equal(await isMounted(mnt), false);
        assert.equal(pidAlive(pid), false, 'umount returned once the daemon had ended');
      } finally {
        silent?.close();
        if (await isMounted(mnt)) await A.run('fusermount', ['-uz', mnt]);
      }
    });

    test('a /dev/fuse closed to the user is said in one line, and nothing is mounted', { skip: !runtimeDir && 'once is enough' }, async () => {
      const mnt = path.join(own, 'mnt-no-fuse');
      await A.run('mkdir', [mnt]);
      const mode = (await stat('/dev/fuse')).mode & 0o777;
      await chmod('/dev/fuse', 0o600);
      try {
        const r = await A.cli(['mount', fx.variants['jf-md5-gzip'].jigdo, mnt]);
        assertCleanFailure(r, mnt, /\/dev\/fuse is not open to this user \(mode 0600/);
      } finally {
        await chmod('/dev/fuse', mode);
      }
      assert.equal(await isMounted(mnt), false);
    });

    test('make-image with the default cache (the user\'s ~/.cache/jigdofs, private)', async () => {
      const v = fx.variants['jf-sha256-bzip2'];
      const out = path.join(own, 'made.iso');
      const r = await A.cli(['make-image', v.jigdo, '-o', out, '--scan', v.partsDir]);
      assertOk(r);
      assert.equal(await fileMd5(out), v.imageMd5);
      assert.equal((await stat(out)).uid, A.user!.uid);
      const cache = path.join(A.user!.home, '.cache', 'jigdofs');
      await assertPrivate(A, cache, 0o700);
      await assertPrivate(A, path.join(cache, 'hash-index.jsonl'), 0o600);
    });

    test('serve: the image over HTTP, status over the user\'s control socket', async () => {
      const v = fx.variants['jf-md5-gzip'];
      const server = await startServe([v.jigdo, '--scan', v.partsDir], { user: A.user, env: A.env });
      try {
        const got = await httpGet(`${server.url}image.iso`);
        assert.equal(got.status, 200);
        assert.equal(md5hex(got.body), v.imageMd5);
        const s = await server.status();
        assert.equal(s.server.byStatus['200'], 1, JSON.stringify(s.server));
        assert.ok((await readdir(controlDirOf(A))).some((f) => f.endsWith('.sock')), `a socket in ${controlDirOf(A)}`);
      } finally {
        assert.equal(await server.stop(), 0, server.log());
      }
    });

    test('another user (root) does not reach the user\'s daemon: its status finds no control socket', async () => {
      const v = fx.variants['jf-md5-gzip'];
      const mnt = path.join(own, 'mnt2');
      await A.run('mkdir', [mnt]);
      assertOk(await A.cli(['mount', v.jigdo, mnt, '--scan', v.partsDir]));
      try {
        const r = await runCli(['status', mnt]);
        assert.equal(r.code, 1, describeRun(r));
        assert.match(r.stderr, /no jigdofs daemon/, describeRun(r));
      } finally {
        assertOk(await A.cli(['umount', mnt]));
      }
    });
  });
}
