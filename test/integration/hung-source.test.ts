/**
 * A source on a file system that stops answering (a hung NFS server, a stopped FUSE daemon) must not keep a
 * mount's daemon alive after its unmount, nor `serve` after its stop. Here the source is real: a second jigdofs
 * mount, whose daemon is stopped with SIGSTOP, holds the image the first mount was told to --scan. The scan then
 * waits in the kernel on a libuv thread, and Node joins those threads on exit: without the exit watchdog
 * (util/exit-watchdog.ts) `process.exit` never returned and the daemon outlived its mount for good.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { rootActor, userActor } from '../helpers/actor.js';
import { assertOk } from '../helpers/cli.js';
import { buildFixtures, type FixtureSet } from '../helpers/fixtures.js';
import { isMounted, mountJigdo, type TestMount } from '../helpers/mount.js';
import { sleep, waitFor } from '../helpers/network.js';
import { startServe } from '../helpers/serve.js';
import { pidAlive } from '../../src/util/pid.js';
import { SHUTDOWN_GRACE_SECONDS } from '../../src/util/exit-watchdog.js';

let fx: FixtureSet;
before(async () => {
  fx = await buildFixtures();
});

for (const [actor, unmount] of [
  [() => rootActor(), 'fusermount -uz'],
  [() => userActor({ runtimeDir: true }), 'jigdofs umount'],
] as const) {
  test(`as ${unmount === 'fusermount -uz' ? 'root' : 'a regular user'}: a daemon whose --scan folder hangs ends within ${SHUTDOWN_GRACE_SECONDS} s of \`${unmount}\`, saying why`, async () => {
    const A = actor();
    A.share(fx.dir);
    const v = fx.variants['jf-md5-gzip'];
    const as = { env: A.env, user: A.user };
    const stuck = await mountJigdo(v.jigdo, ['--offline', '--scan', v.partsDir], as);
    const stuckPid = await stuck.pid();
    let m: TestMount | undefined;
    let pid: number | undefined;
    try {
      process.kill(stuckPid, 'SIGSTOP'); // from now on every look into the stuck mount waits
      m = await mountJigdo(v.jigdo, ['--offline', '--scan', stuck.mnt], as);
      pid = await m.pid();
      const started = Date.now();
      if (unmount === 'fusermount -uz') await A.run('fusermount', ['-uz', m.mnt]);
      else assertOk(await m.umount());
      await waitFor(() => !pidAlive(pid!), (SHUTDOWN_GRACE_SECONDS + 15) * 1000, 'the daemon to end');
      assert.ok(Date.now() - started < (SHUTDOWN_GRACE_SECONDS + 10) * 1000);
      assert.equal(await isMounted(m.mnt), false);
      const text = await m.log();
      assert.match(text, /unmounted .*\/mnt\n/);
      assert.match(text, new RegExp(`mnt: the daemon did not end within ${SHUTDOWN_GRACE_SECONDS} s of unmounting \\(a source on a file system that does not answer\\?\\): killed`));
    } finally {
      if (pid && pidAlive(pid)) process.kill(pid, 'SIGKILL');
      process.kill(stuckPid, 'SIGCONT');
      await m?.cleanup();
      await stuck.cleanup();
      A.close();
    }
  });
}

test(`serve whose --scan folder hangs ends within ${SHUTDOWN_GRACE_SECONDS} s of its SIGTERM, saying why`, async () => {
  const v = fx.variants['jf-md5-gzip'];
  const stuck = await mountJigdo(v.jigdo, ['--offline', '--scan', v.partsDir]);
  const stuckPid = await stuck.pid();
  let server: Awaited<ReturnType<typeof startServe>> | undefined;
  try {
    process.kill(stuckPid, 'SIGSTOP');
    server = await startServe([v.jigdo, '--offline', '--scan', stuck.mnt, '--cache-dir', path.join(stuck.cacheDir, '..', 'serve-cache')]);
    const started = Date.now();
    const ended = await Promise.race([server.stop('SIGTERM').then(() => true), sleep((SHUTDOWN_GRACE_SECONDS + 15) * 1000).then(() => false)]);
    assert.ok(ended, `serve still running ${SHUTDOWN_GRACE_SECONDS + 15} s after SIGTERM:\n${server.log()}`);
    assert.ok(Date.now() - started < (SHUTDOWN_GRACE_SECONDS + 10) * 1000);
    assert.match(server.log(), /stopped\n/);
    assert.match(server.log(), new RegExp(`serve: did not end within ${SHUTDOWN_GRACE_SECONDS} s of stopping \\(a source on a file system that does not answer\\?\\): killed`));
  } finally {
    if (server?.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill('SIGKILL');
    process.kill(stuckPid, 'SIGCONT');
    await stuck.cleanup();
  }
});
