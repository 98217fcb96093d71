/**
 * Whose mount it is. A mount's source names its daemon (`jigdofs-PID`, src/fuse/mount-source.ts), so that:
 * - a daemon that learns late that its mount was detached (it was stopped meanwhile) leaves alone a new mount made on
 *   the same path since, and its control socket;
 * - a stopped daemon's mount is told without waiting on it: `mount` over it is refused, `umount` unmounts it from
 *   outside, neither hangs;
 * - a mount made without XDG_RUNTIME_DIR is found from a shell that has one; a live mount whose control socket is in
 *   no folder this user looks in is refused, never detached;
 * - mounts started at once on one path: one wins, the others fail with one line, and the winner keeps its socket.
 * Real FUSE mounts through the CLI, as root and as a regular user.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rootActor, userActor, type Actor } from '../helpers/actor.js';
import { assertCleanFailure, assertOk, runCli } from '../helpers/cli.js';
import { buildFixtures, type FixtureSet } from '../helpers/fixtures.js';
import { md5hex } from '../helpers/hash.js';
import { forceUnmount, isMounted, mountJigdo, type TestMount } from '../helpers/mount.js';
import { waitFor } from '../helpers/network.js';
import { pidAlive } from '../../src/util/pid.js';

let fx: FixtureSet;
let work: string;
before(async () => {
  fx = await buildFixtures();
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-identity-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

const variant = () => fx.variants['jf-md5-gzip'];
const sourceArgs = () => ['--scan', variant().partsDir];
/** The mount lines at `mnt` in /proc/mounts. */
const mountLines = async (mnt: string) => (await readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.split(' ')[1] === mnt);

/** Continues (and so lets end) a daemon a test stopped, whatever the test did. */
function release(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGCONT');
  } catch {
    // ended
  }
}

const ACTORS: Array<{ label: string; make: () => Actor }> = [
  { label: 'root', make: rootActor },
  { label: 'a regular user', make: () => userActor({ runtimeDir: true }) },
];

for (const { label, make } of ACTORS) {
  describe(`a mount's daemon stopped, as ${label}`, () => {
    let A: Actor;
    before(() => {
      A = make();
      A.share(fx.dir);
    });
    after(() => A?.close());
    const mountAs = (opts: { mnt?: string } = {}): Promise<TestMount> => mountJigdo(variant().jigdo, sourceArgs(), { ...opts, env: A.env, user: A.user });

    test('detached meanwhile: once continued it ends, and leaves the new mount on its path and its socket alone (with SIGTERM and without)', async () => {
      for (const signal of ['SIGCONT', 'SIGTERM'] as const) {
        const first = await mountAs();
        let stopped: number | undefined;
        let second: TestMount | undefined;
        try {
          stopped = await first.pid();
          process.kill(stopped, 'SIGSTOP');
          await A.run('fusermount', ['-uz', first.mnt]);
          second = await mountAs({ mnt: first.mnt });
          const pid = await second.pid();
          process.kill(stopped, signal);
          release(stopped);
          await waitFor(() => !pidAlive(stopped!), 15_000, `the late daemon (${signal}) to end`);
          assert.equal((await mountLines(first.mnt)).length, 1, `${signal}: the new mount is still there`);
          assert.equal(await second.pid(), pid, `${signal}: the new mount's control socket still answers`);
          assert.equal(md5hex(await A.runBuffer('cat', [second.file('image.iso')])), variant().imageMd5);
          assertOk(await second.umount());
        } finally {
          release(stopped);
          await second?.cleanup();
          await first.cleanup();
        }
      }
    });

    test('still mounted: mount over it is refused and umount unmounts it, neither waiting on it; continued, it ends', async () => {
      const m = await mountAs();
      let stopped: number | undefined;
      try {
        stopped = await m.pid();
        process.kill(stopped, 'SIGSTOP');
        const again = await A.cli(['mount', variant().jigdo, m.mnt, ...sourceArgs(), '--cache-dir', path.join(A.tempDir('jigdofs-identity-cache-'), 'c')], { timeoutMs: 20_000 });
        assertCleanFailure(again, m.mnt, new RegExp(`its daemon \\(pid ${stopped}\\) is stopped \\(kill -CONT ${stopped}, or jigdofs umount `));
        // status says so at once (the code before asked it for 5 s: "no answer from its jigdofs daemon").
        const t0 = Date.now();
        const status = await A.cli(['status', m.mnt], { timeoutMs: 20_000 });
        assertCleanFailure(status, m.mnt, new RegExp(`: its daemon \\(pid ${stopped}\\) is stopped \\(kill -CONT ${stopped}, or jigdofs umount `));
        assert.ok(Date.now() - t0 < 4000, `status took ${Date.now() - t0} ms`);
        const off = await A.cli(['umount', m.mnt], { timeoutMs: 20_000 });
        assertOk(off);
        assert.match(off.stderr, /is stopped; unmounting with fusermount/);
        assert.equal(await isMounted(m.mnt), false);
        release(stopped);
        await waitFor(() => !pidAlive(stopped!), 15_000, 'the continued daemon to end');
      } finally {
        release(stopped);
        await m.cleanup();
      }
    });
  });
}

/**
 * Freezes `pid` with the cgroup freezer (v1's freezer hierarchy, else v2's cgroup.freeze), as `docker pause` does; the
 * returned function thaws it and removes the cgroup once the process has left it. Undefined where there is neither.
 */
async function freeze(pid: number): Promise<(() => Promise<void>) | undefined> {
  const name = `jigdofs-test-${process.pid}-${pid}`;
  const v1 = '/sys/fs/cgroup/freezer';
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : undefined;
  const dir = existsSync(`${v1}/tasks`) ? `${v1}/${name}` : v2 && `${v2}/${name}`;
  if (!dir) return undefined;
  await mkdir(dir);
  await writeFile(`${dir}/cgroup.procs`, String(pid)); // every thread of it (v1 and v2)
  const isV1 = dir.startsWith(v1);
  await writeFile(isV1 ? `${dir}/freezer.state` : `${dir}/cgroup.freeze`, isV1 ? 'FROZEN' : '1');
  await waitFor(async () => (isV1 ? (await readFile(`${dir}/freezer.state`, 'utf8')).startsWith('FROZEN') : /^frozen 1$/m.test(await readFile(`${dir}/cgroup.events`, 'utf8'))), 10_000, 'the freeze');
  return async () => {
    await writeFile(isV1 ? `${dir}/freezer.state` : `${dir}/cgroup.freeze`, isV1 ? 'THAWED' : '0');
    await waitFor(() => !pidAlive(pid), 15_000, 'the thawed daemon to end').catch(() => process.kill(pid, 'SIGKILL'));
    await waitFor(async () => (await rmdir(dir).then(() => true, () => false)), 5_000, 'the test cgroup to go').catch(() => undefined);
  };
}

describe("a mount's daemon frozen by its cgroup (docker pause, systemctl freeze)", () => {
  test('mount over it is refused and umount unmounts it, in bounded time and saying so; thawed, it ends', async (t) => {
    const m = await mountJigdo(variant().jigdo, sourceArgs());
    let thaw: (() => Promise<void>) | undefined;
    try {
      thaw = await freeze(await m.pid());
      if (!thaw) return t.skip('no cgroup freezer here');
      const again = await runCli(['mount', variant().jigdo, m.mnt, ...sourceArgs(), '--cache-dir', path.join(work, 'frozen-cache')], { timeoutMs: 20_000 });
      assertCleanFailure(again, m.mnt, /its daemon \(pid \d+\) is frozen by its cgroup/);
      assertCleanFailure(await runCli(['status', m.mnt], { timeoutMs: 20_000 }), m.mnt, /: its daemon \(pid \d+\) is frozen by its cgroup/);
      const off = await runCli(['umount', m.mnt], { timeoutMs: 20_000 });
      assertOk(off);
      assert.match(off.stderr, /is frozen; unmounting with fusermount/);
      assert.equal(await isMounted(m.mnt), false);
    } finally {
      await thaw?.();
      await m.cleanup();
    }
  });
});

describe('mounts started at once on one path', () => {
  test('one wins and keeps its control socket; each other fails with one line; one mount is left (3 rounds)', async () => {
    const v = variant();
    for (let round = 1; round <= 3; round++) {
      const mnt = path.join(work, `race-${round}`);
      await mkdir(mnt);
      try {
        const runs = await Promise.all(
          [1, 2, 3, 4].map((i) => runCli(['mount', v.jigdo, mnt, ...sourceArgs(), '--cache-dir', path.join(work, `race-cache-${i}`), '--log-file', path.join(work, `race-${round}-${i}.log`)])),
        );
        const won = runs.filter((r) => r.code === 0);
        assert.equal(won.length, 1, `round ${round}: exactly one mount says it mounted:\n${runs.map((r) => `${r.code} ${r.stderr}`).join('')}`);
        for (const r of runs.filter((x) => x.code !== 0)) assertCleanFailure(r, mnt);
        assert.equal((await mountLines(mnt)).length, 1);
        const pid = Number(/daemon pid (\d+)/.exec(won[0]!.stderr)?.[1]);
        const status = await runCli(['status', mnt, '--json']);
        assertOk(status);
        assert.equal((JSON.parse(status.stdout) as { pid: number }).pid, pid, 'the mount there is the one that said so');
        assertOk(await runCli(['umount', mnt]));
        assert.equal(await isMounted(mnt), false);
      } finally {
        await forceUnmount(mnt);
      }
    }
  });
});

describe('control sockets in another runtime folder (a boot-time fstab mount has no XDG_RUNTIME_DIR; a login shell has one)', () => {
  /** A private folder for XDG_RUNTIME_DIR or TMPDIR. */
  const privateDir = async (name: string): Promise<string> => {
    const d = path.join(work, name);
    await mkdir(d, { mode: 0o700 });
    return d;
  };

  test('a mount made without XDG_RUNTIME_DIR is found from a shell that has one: status, then umount through its daemon', async () => {
    const tmp = await privateDir('boot-tmp');
    const base: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
    delete base.XDG_RUNTIME_DIR;
    const m = await mountJigdo(variant().jigdo, sourceArgs(), { env: base });
    const shell = { ...base, XDG_RUNTIME_DIR: await privateDir('login-runtime') };
    try {
      const pid = await m.pid();
      const status = await runCli(['status', m.mnt, '--json'], { env: shell });
      assertOk(status);
      assert.equal((JSON.parse(status.stdout) as { pid: number }).pid, pid);
      // A second mount there is told it is mounted, not that it cannot be reached.
      assertCleanFailure(await runCli(['mount', variant().jigdo, m.mnt, ...sourceArgs(), '--cache-dir', path.join(work, 'boot-cache')], { env: shell }), m.mnt, /already mounted here/);
      assertOk(await runCli(['umount', m.mnt], { env: shell }));
      assert.equal(await isMounted(m.mnt), false);
      await waitFor(() => !pidAlive(pid), 15_000, 'its daemon to end');
    } finally {
      await m.cleanup();
    }
  });

  test('a live mount whose socket is in no folder this user looks in: mount over it is refused, never detached; umount unmounts it', async () => {
    const env = { ...process.env, XDG_RUNTIME_DIR: await privateDir('runtime-a') };
    const m = await mountJigdo(variant().jigdo, sourceArgs(), { env });
    const elsewhere = { ...process.env, XDG_RUNTIME_DIR: await privateDir('runtime-b') };
    try {
      const pid = await m.pid();
      const again = await runCli(['mount', variant().jigdo, m.mnt, ...sourceArgs(), '--cache-dir', path.join(work, 'other-cache')], { env: elsewhere });
      assertCleanFailure(again, m.mnt, new RegExp(`its daemon \\(pid ${pid}\\) has no control socket here`));
      assert.equal(await m.pid(), pid, 'the mount is still there and answers');
      assertOk(await runCli(['umount', m.mnt], { env: elsewhere }));
      assert.equal(await isMounted(m.mnt), false);
      await waitFor(() => !pidAlive(pid), 15_000, 'its daemon to end');
    } finally {
      await m.cleanup();
    }
  });
});
