/**
 * A source on a file system that stops answering (a hung NFS server, a stopped FUSE daemon) must not keep a
 * mount's daemon alive after its unmount, nor `serve` after its stop. Here the source is real: a second jigdofs
 * mount, whose daemon is stopped with SIGSTOP, holds the image the first mount was told to --scan. The scan then
 * waits in the kernel on a libuv thread, and Node joins those threads on exit: without the exit watchdog
 * (util/exit-watchdog.ts) `process.exit` never returned and the daemon outlived its mount for good. With the
 * stopped mount as a --local tree, reads can hold all of libuv's threads: the unmount watch must not need them.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { rootActor, userActor } from '../helpers/actor.js';
import { assertOk, runCli } from '../helpers/cli.js';
import { buildFixtures, type FixtureSet, type FixtureVariant } from '../helpers/fixtures.js';
import { isMounted, mountJigdo, type TestMount } from '../helpers/mount.js';
import { jigdoWithServers, sleep, waitFor } from '../helpers/network.js';
import { startMirror } from '../helpers/mirror-server.js';
import { startServe } from '../helpers/serve.js';
import { loadJigdo, openImage, selectImage } from '../../src/engine/session.js';
import { pidAlive } from '../../src/util/pid.js';
import { SHUTDOWN_GRACE_SECONDS } from '../../src/util/exit-watchdog.js';

let fx: FixtureSet;
before(async () => {
  fx = await buildFixtures();
});

/** A signal to a process that may have ended meanwhile (a cleanup must go on either way). */
const killQuietly = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
};

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
      if (pid && pidAlive(pid)) killQuietly(pid, 'SIGKILL');
      killQuietly(stuckPid, 'SIGCONT');
      await m?.cleanup();
      await stuck.cleanup();
      A.close();
    }
  });
}

/**
 * Mounts the image with a --scan folder that hangs (a stopped mount's) and `args`, and reads it whole within 30 s: the
 * parts must come from elsewhere without waiting for the walk.
 */
async function readPastHungScan(v: FixtureVariant, args: string[], cacheDir?: string): Promise<void> {
  const stuck = await mountJigdo(v.jigdo, ['--offline', '--scan', v.partsDir]);
  let stuckPid: number | undefined;
  let m: TestMount | undefined;
  let pid: number | undefined;
  try {
    stuckPid = await stuck.pid();
    process.kill(stuckPid, 'SIGSTOP');
    m = await mountJigdo(v.jigdo, ['--offline', '--scan', stuck.mnt, ...args], { cacheDir });
    pid = await m.pid();
    const { stdout } = await promisify(execFile)('timeout', ['30', 'md5sum', m.file('image.iso')]);
    assert.equal(stdout.split(' ')[0], v.imageMd5);
  } finally {
    // (The daemon's scan waits in the kernel for good: killed, not unmounted and waited for.)
    if (pid) killQuietly(pid, 'SIGKILL');
    if (stuckPid) killQuietly(stuckPid, 'SIGCONT');
    await m?.cleanup();
    await stuck.cleanup();
  }
}

test('a mount whose --scan folder hangs serves what its --local tree has: the places the .jigdo names are looked at before the scan ends', async () => {
  // Before, every part's look-up first waited for the whole --scan walk (a home folder, a mirror: minutes), here forever.
  const v = fx.variants['jf-md5-gzip'];
  await readPastHungScan(v, ['--local', `${fx.partsLabel}=${v.partsDir}`]);
});

test('a mount whose --scan folder hangs serves what its disk cache has: the cache is looked at before the scan ends', async () => {
  // Before, the cache came after every local source, so a warm cache waited for the whole --scan walk as well.
  const v = fx.variants['jf-md5-gzip'];
  const work = await mkdtemp(path.join(tmpdir(), 'jigdofs-hung-cache-'));
  const cacheDir = path.join(work, 'cache');
  const mirror = await startMirror({ root: v.partsDir });
  try {
    const jigdo = await jigdoWithServers(v, [mirror.url], work);
    assertOk(await runCli(['make-image', jigdo, '-o', path.join(work, 'image.iso'), '--cache-dir', cacheDir, '--keep-parts'], { timeoutMs: 60_000 }));
    await mirror.close();
    await readPastHungScan(v, [], cacheDir);
  } finally {
    await mirror.close();
    await rm(work, { recursive: true, force: true });
  }
});

/** Threads of `pid` waiting on another FUSE mount (its own threads reading /dev/fuse are not counted). */
async function threadsWaitingOnFuse(pid: number): Promise<number> {
  const tids = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const wchans = await Promise.all(tids.map((t) => readFile(`/proc/${pid}/task/${t}/wchan`, 'utf8').catch(() => '')));
  return wchans.filter((w) => /fuse|request_wait_answer|d_alloc_parallel|d_wait_lookup/.test(w) && w !== 'fuse_dev_do_read').length;
}

/** Where each part starts in the image (its first place). */
async function partStarts(jigdo: string): Promise<number[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-layout-'));
  try {
    const j = await loadJigdo(jigdo);
    const s = await openImage(j, selectImage(j), { local: [], scan: [], cacheDir: dir, memory: 16 << 20, log: () => undefined });
    const starts = [...s.layout.parts.values()].map((p) => p.offsets[0]!);
    await s.close();
    return starts;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a daemon whose every libuv thread waits on a hung --local folder still notices `fusermount -uz` from outside, and ends within the grace of a SIGTERM', async () => {
  // The look-ups of the parts in the stuck folder (a stat each) hold all of libuv's threads. The unmount watch
  // used to read /proc/mounts through that same pool: it waited behind them, never saw the unmount, and the
  // daemon stayed for good (its exit watchdog is armed by the stop). The daemon gets a pool of 2 threads, so that
  // the six reads below surely hold all of them (how many of their look-ups run at once depends on timing).
  const poolSize = 2;
  const v = fx.variants['jf-md5-gzip'];
  const starts = await partStarts(v.jigdo);
  assert.ok(starts.length > poolSize, `the fixture has more parts than the daemon has threads (${starts.length})`);
  const A = rootActor();
  const config = await mkdtemp(path.join(tmpdir(), 'jigdofs-config-'));
  const env = { ...process.env, UV_THREADPOOL_SIZE: String(poolSize), XDG_CONFIG_HOME: config, XDG_CACHE_HOME: config, JIGDOFS_DEBUG: '' };
  const stuck = await mountJigdo(v.jigdo, ['--offline', '--scan', v.partsDir]);
  let stuckPid: number | undefined;
  let m: TestMount | undefined;
  let pid: number | undefined;
  let readers: ChildProcess[] = [];
  try {
    stuckPid = await stuck.pid();
    process.kill(stuckPid, 'SIGSTOP');
    m = await mountJigdo(v.jigdo, ['--offline', '--local', `${fx.partsLabel}=${stuck.mnt}`], { env });
    pid = await m.pid();
    // A read at the start of each part: each waits on its look-up in the stuck folder, and keeps the image open
    // (so the kernel keeps the connection after the lazy unmount, and the daemon serves on: it was detached lazily).
    readers = starts.map((at) => spawn('dd', [`if=${m!.file('image.iso')}`, 'of=/dev/null', 'bs=4096', 'count=1', `skip=${at}`, 'iflag=skip_bytes'], { stdio: 'ignore' }));
    // Not a sleep: the test proves something only once every thread of the pool is held.
    await waitFor(async () => (await threadsWaitingOnFuse(pid!)) >= poolSize, 30_000, `${poolSize} threads of the daemon to wait on the stuck mount`);
    await A.run('fusermount', ['-uz', m.mnt]);
    // Noticed (the readers still hold the image: served until they close it, which these never will)...
    const detached = /detached \(unmounted from outside\); serving \d+ open files? until they are closed/;
    await waitFor(async () => detached.test(await m!.log()), 10_000, 'the daemon to notice the detach');
    // ...and a signal still stops it at once, the exit watchdog ending what the hung folder holds.
    const started = Date.now();
    process.kill(pid, 'SIGTERM');
    await waitFor(() => !pidAlive(pid!), (SHUTDOWN_GRACE_SECONDS + 15) * 1000, 'the daemon to end');
    assert.ok(Date.now() - started < (SHUTDOWN_GRACE_SECONDS + 10) * 1000);
    assert.match(await m.log(), /unmounting .*\(SIGTERM\)/);
  } finally {
    for (const r of readers) r.kill('SIGKILL');
    if (pid && pidAlive(pid)) killQuietly(pid, 'SIGKILL');
    if (stuckPid) killQuietly(stuckPid, 'SIGCONT');
    await m?.cleanup();
    await stuck.cleanup();
    await rm(config, { recursive: true, force: true });
    A.close();
  }
});

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
    killQuietly(stuckPid, 'SIGCONT');
    await stuck.cleanup();
  }
});
