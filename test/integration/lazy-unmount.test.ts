/**
 * A lazy unmount (`umount -l`, `fusermount -uz`, `jigdofs umount --lazy`) detaches the mount at once, and, as
 * umount(8) has it, the files still open (a reader's descriptor, a folder, a loop device, a read waiting for a
 * mirror) go on being served until they are closed: then the daemon ends. Before, the daemon stopped as soon as it
 * saw its mount gone, and the kernel cut those readers off (EIO/ENOTCONN, a truncated copy).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, open, opendir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { rootActor, userActor, type Actor } from '../helpers/actor.js';
import { assertCleanFailure, assertOk } from '../helpers/cli.js';
import { buildFixtures, type FixtureSet, type FixtureVariant } from '../helpers/fixtures.js';
import { md5hex } from '../helpers/hash.js';
import { isMounted, mountJigdo, type TestMount } from '../helpers/mount.js';
import { startMirror } from '../helpers/mirror-server.js';
import { jigdoWithServers, partsUri, sleep, waitFor } from '../helpers/network.js';
import { pidAlive } from '../../src/util/pid.js';
import { askControl } from '../../src/fuse/control-client.js';
import { controlDir, controlSocketPath } from '../../src/fuse/control-files.js';
import type { DetachedStatus } from '../../src/fuse/detach.js';

const run = promisify(execFile);

let fx: FixtureSet;
let v: FixtureVariant;
let work: string;
before(async () => {
  fx = await buildFixtures();
  v = fx.variants['jf-md5-gzip'];
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-lazy-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A daemon left by a failed test must not outlive it. */
const killQuietly = (pid: number | undefined): void => {
  try {
    if (pid) process.kill(pid, 'SIGTERM');
  } catch {
    // gone already
  }
};

/** After the detach: the daemon says so, serves on past a look of its unmount watch (1 s), and the path is free. */
async function assertServingDetached(m: TestMount, pid: number, open: number, why: RegExp): Promise<void> {
  assert.equal(await isMounted(m.mnt), false, 'detached at once');
  await sleep(1500);
  assert.ok(pidAlive(pid), `the daemon still serves:\n${await m.log()}`);
  const line = new RegExp(`detached \\(${why.source}\\); serving ${open} open files? until they are closed`);
  await waitFor(async () => line.test(await m.log()), 5000, `the log line ${line}`);
}

/** Then, once the last file is closed, the daemon ends within a few seconds, saying why. */
async function assertEndsAfterClose(m: TestMount, pid: number, why: RegExp): Promise<void> {
  await waitFor(() => !pidAlive(pid), 5000, 'the daemon to end once the last open file was closed');
  const text = await m.log();
  assert.match(text, new RegExp(`unmounting .*\\(${why.source}; (the last open file was closed|the kernel ended the connection: no file is open)\\)`));
  assert.match(text, /unmounted .*\/mnt\n/);
}

const DETACHES: Array<{ label: string; make: () => Actor; detach: (A: Actor, m: TestMount) => Promise<void>; why: RegExp }> = [
  { label: 'root, `umount -l`', make: rootActor, detach: async (A, m) => void (await A.run('umount', ['-l', m.mnt])), why: /unmounted from outside/ },
  {
    label: 'a regular user, `fusermount -uz`',
    make: () => userActor({ runtimeDir: true }),
    detach: async (A, m) => void (await A.run('fusermount', ['-uz', m.mnt])),
    why: /unmounted from outside/,
  },
  {
    label: 'a regular user, `jigdofs umount --lazy`',
    make: () => userActor({ runtimeDir: true }),
    detach: async (A, m) => {
      const r = await A.cli(['umount', '--lazy', m.mnt], { timeoutMs: 10_000 });
      assertOk(r);
      assert.match(r.stderr, /detached; its daemon \(pid \d+\) ends once the open file is closed/);
    },
    why: /jigdofs umount --lazy/,
  },
];

for (const { label, make, detach, why } of DETACHES) {
  test(`as ${label}: a reader that holds the image open reads all of it after the detach; the daemon ends when it closes it`, async () => {
    const A = make();
    A.share(fx.dir);
    const original = await readFile(v.image);
    const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir], { env: A.env, user: A.user });
    let pid: number | undefined;
    try {
      pid = await m.pid();
      const reader = await A.fs.open(m.file('image.iso'), 'r');
      let closed = false;
      try {
        const head = Buffer.alloc(4096);
        await reader.read(head, 0, head.length, 0); // reading already: a cp under way
        await detach(A, m);
        await assertServingDetached(m, pid, 1, why);
        const copy = Buffer.alloc(original.length);
        for (let at = 0; at < copy.length; ) {
          const { bytesRead } = await reader.read(copy, at, Math.min(1 << 20, copy.length - at), at);
          assert.ok(bytesRead > 0, `read at ${at} of ${copy.length}`);
          at += bytesRead;
        }
        assert.equal(md5hex(copy), md5hex(original), 'the whole image, read through the descriptor opened before the detach');
        await reader.close();
        closed = true;
      } finally {
        if (!closed) await reader.close().catch(() => undefined);
      }
      await assertEndsAfterClose(m, pid, why);
    } finally {
      killQuietly(pid);
      await m.cleanup();
      A.close();
    }
  });
}

test('as root: an open folder of the mount is served after `umount -l` until it is closed', async () => {
  const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir]);
  let pid: number | undefined;
  try {
    pid = await m.pid();
    const dir = await opendir(m.mnt);
    try {
      await run('umount', ['-l', m.mnt]);
      await assertServingDetached(m, pid, 1, /unmounted from outside/);
      assert.equal((await dir.read())?.name, 'image.iso');
    } finally {
      await dir.close().catch(() => undefined);
    }
    await assertEndsAfterClose(m, pid, /unmounted from outside/);
  } finally {
    killQuietly(pid);
    await m.cleanup();
  }
});

test('as root: a loop device on the image is served after `umount -l` until it is detached', async () => {
  const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir]);
  let pid: number | undefined;
  let loop: string | undefined;
  try {
    pid = await m.pid();
    loop = (await run('losetup', ['-f', '--show', '-r', m.file('image.iso')])).stdout.trim();
    await run('umount', ['-l', m.mnt]);
    await assertServingDetached(m, pid, 1, /unmounted from outside/);
    await run('blockdev', ['--flushbufs', loop]); // (root may drop the device's cache: its reads then go to the daemon)
    const { stdout } = await run('md5sum', [loop]);
    assert.equal(stdout.split(' ')[0], v.imageMd5, 'the image read through the loop device');
    await run('losetup', ['-d', loop]);
    loop = undefined;
    await assertEndsAfterClose(m, pid, /unmounted from outside/);
  } finally {
    if (loop) await run('losetup', ['-d', loop]).catch(() => undefined);
    killQuietly(pid);
    await m.cleanup();
  }
});

test('as root: a read waiting for a mirror when the mount is detached gets its bytes; a cp under way completes', async () => {
  const mirror = await startMirror({ root: fx.tree, latencyMs: 1500 });
  const config = path.join(work, 'config.ini');
  await writeFile(config, '[network]\nretries = 0\ntimeout = 20\n');
  const jigdo = await jigdoWithServers(v, [partsUri(mirror)], path.join(work, 'net'));
  const m = await mountJigdo(jigdo, ['--config', config]);
  let pid: number | undefined;
  try {
    pid = await m.pid();
    const copy = path.join(work, 'copy.iso');
    const cp = spawn('cp', [m.file('image.iso'), copy], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    cp.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => cp.on('exit', (code) => resolve(code)));
    // A read is waiting for the mirror (a request with no answer yet): detach now.
    await waitFor(() => mirror.requests.some((r) => r.method === 'GET' && r.status === 0), 10_000, 'a request to the mirror');
    await run('umount', ['-l', m.mnt]);
    assert.equal(await exited, 0, `cp failed: ${stderr}`);
    assert.equal(md5hex(await readFile(copy)), v.imageMd5, 'the whole image, though the mount was detached while cp waited');
    await assertEndsAfterClose(m, pid, /unmounted from outside/);
  } finally {
    killQuietly(pid);
    await m.cleanup();
    await mirror.close();
  }
});

test('as root: a shell whose working folder is the mount, and a reader whose open flags look like the daemon\'s own, keep a detached mount served', async () => {
  // Neither is counted as an open file (a working folder is no open; O_NONBLOCK|O_DSYNC is how the drops open the image):
  // the kernel, which ends the connection when nothing uses the mount, says when the daemon may end.
  const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir]);
  let pid: number | undefined;
  const read = `import os,sys\nfd=os.open("image.iso", os.O_RDONLY|os.O_NONBLOCK|os.O_DSYNC)\nsys.stdin.readline()\nprint(len(os.pread(fd, 1<<20, 0)))\nos.close(fd)\nsys.stdin.readline()\nprint(os.listdir("."))\n`;
  const py = spawn('python3', ['-c', read], { cwd: m.mnt, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  py.stdout.on('data', (d: Buffer) => (out += d.toString()));
  py.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => py.on('exit', resolve));
  try {
    pid = await m.pid();
    await sleep(500); // the file is open
    await run('umount', ['-l', m.mnt]);
    assert.equal(await isMounted(m.mnt), false, 'detached at once');
    await sleep(1500); // past a look of the unmount watch
    assert.ok(pidAlive(pid), `the daemon still serves:\n${await m.log()}`);
    py.stdin.write('\n');
    await waitFor(() => out.includes('\n'), 5000, 'the read');
    assert.equal(out, `${Math.min(1 << 20, v.imageSize)}\n`, 'the read got its bytes');
    await sleep(1500); // its file is closed; its working folder is still the mount
    assert.ok(pidAlive(pid), `the daemon serves the working folder:\n${await m.log()}`);
    py.stdin.end('\n');
    assert.equal(await exited, 0, out);
    assert.match(out, /\['image\.iso'\]\n$/, 'the folder listed after the detach');
    await waitFor(() => !pidAlive(pid!), 5000, 'the daemon to end once the shell left the folder');
    assert.match(await m.log(), /unmounting .*\(unmounted from outside\)/);
  } finally {
    py.kill('SIGKILL');
    killQuietly(pid);
    await m.cleanup();
  }
});

test('as root: a `jigdofs umount` that reaches the daemon just after an outside `umount -l` does not cut off a reader', async () => {
  // The daemon's own look at its mount (each second) has not seen the detach yet; the unmount request finds the mount
  // gone. It used to stop the daemon then, under the reader.
  const original = await readFile(v.image);
  const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir]);
  let pid: number | undefined;
  const reader = await open(m.file('image.iso'), 'r');
  try {
    pid = await m.pid();
    await reader.read(Buffer.alloc(4096), 0, 4096, 0);
    await run('umount', ['-l', m.mnt]);
    const answer = (await askControl(m.mnt, 'unmount', 10_000, { lazy: false })) as { open?: number };
    assert.equal(answer.open, 1, 'the answer says one file is still open');
    await sleep(1500);
    assert.ok(pidAlive(pid), `the daemon still serves:\n${await m.log()}`);
    const copy = Buffer.alloc(original.length);
    for (let at = 0; at < copy.length; ) at += (await reader.read(copy, at, Math.min(1 << 20, copy.length - at), at)).bytesRead || Infinity;
    assert.equal(md5hex(copy), v.imageMd5, 'the whole image after the detach');
    await reader.close();
    await assertEndsAfterClose(m, pid, /unmounted from outside/);
  } finally {
    await reader.close().catch(() => undefined);
    killQuietly(pid);
    await m.cleanup();
  }
});

/**
 * The names of the control sockets of daemons of `mnt` (its mount's, `KEY.sock`, and any other named after the path) in
 * the actor's control folder (control.ts controlDir, in its environment; root's is shared with other test files).
 */
async function socketsOf(A: Actor, mnt: string): Promise<{ mount: string; all: string[] }> {
  const dir = A.env?.XDG_RUNTIME_DIR ? path.join(A.env.XDG_RUNTIME_DIR, 'jigdofs') : controlDir();
  const mount = path.basename(controlSocketPath(mnt, dir));
  return { mount, all: (await readdir(dir)).filter((n) => n.startsWith(mount.replace(/\.sock$/, ''))).sort() };
}

// Root's `umount -l` and a regular user's `fusermount -uz` (DETACHES' first two).
for (const { label, make, detach } of DETACHES.slice(0, 2)) {
  test(`as ${label}: status shows the detached daemon and its open file, then a new mount on the path; umount says what the detached one serves; its socket goes when it ends`, async () => {
    const A = make();
    A.share(fx.dir);
    const as = { env: A.env, user: A.user };
    const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir], as);
    let pid: number | undefined;
    let again: TestMount | undefined;
    const reader = await A.fs.open(m.file('image.iso'), 'r');
    try {
      pid = await m.pid();
      await reader.read(Buffer.alloc(4096), 0, 4096, 0);
      await detach(A, m);
      assert.equal(await isMounted(m.mnt), false, 'detached at once');
      // At once (no wait for the daemon's own look at its mount): text, then JSON.
      const text = await A.cli(['status', m.mnt], { timeoutMs: 15_000 });
      assertOk(text);
      assert.ok(text.stdout.startsWith(`${m.mnt}: jigdofs daemon pid ${pid}, up `), text.stdout);
      assert.match(text.stdout, /\n {2}DETACHED since \S+ \(\d+ s ago; unmounted from outside\): not mounted; served until nothing uses it: 1 open file\n/);
      assert.match(text.stdout, /\n {2}image\.iso: /);
      await sleep(1500); // and once the daemon's own look at its mount (each second) saw the detach too
      const json = await m.status();
      assert.equal(json.pid, pid);
      const d = json.detached as DetachedStatus;
      assert.deepEqual({ why: d.why, openFiles: d.openFiles }, { why: 'unmounted from outside', openFiles: 1 });
      assert.ok(Math.abs(Date.now() - Date.parse(d.since)) < 60_000, d.since);
      const detachedSockets = await socketsOf(A, m.mnt);
      assert.equal(detachedSockets.all.length, 1, 'the detached daemon answers on a socket');
      assert.notEqual(detachedSockets.all[0], detachedSockets.mount, '… of its own, not under the mount\'s name');
      // A non-lazy umount has nothing to unmount: it says what the detached daemon still serves, and leaves it.
      const u = await A.cli(['umount', m.mnt], { timeoutMs: 15_000 });
      const serves = `not mounted: detached lazily, and its daemon \\(pid ${pid}\\) still serves 1 open file \\(and whatever else uses the mount\\) and ends by itself once nothing does; \`kill ${pid}\` stops it now`;
      assertCleanFailure(u, m.mnt, new RegExp(serves));
      assert.ok(pidAlive(pid), 'umount left the detached daemon serving');
      // A new mount on the path while the detached daemon serves: it is the one status shows.
      again = await mountJigdo(v.jigdo, ['--scan', v.partsDir], { ...as, mnt: m.mnt });
      const newPid = await again.pid();
      assert.notEqual(newPid, pid);
      const both = await again.status();
      assert.equal(both.detached, undefined, 'the new mount is mounted');
      // … naming the earlier mount's daemon that still serves beside it (text and JSON).
      assert.deepEqual((both.otherDetached as Array<{ pid: number; openFiles: number }>).map((o) => [o.pid, o.openFiles]), [[pid, 1]]);
      const bothText = await A.cli(['status', m.mnt], { timeoutMs: 15_000 });
      assert.match(bothText.stdout, new RegExp(`^  other detached daemons of this path still serving: pid ${pid} \\(1 open file, since `, 'm'), bothText.stdout);
      assert.ok(pidAlive(pid), 'the detached daemon still serves its reader');
      assert.deepEqual((await socketsOf(A, m.mnt)).all, [...detachedSockets.all, detachedSockets.mount].sort(), 'the new mount\'s socket and the detached one\'s');
      await reader.close();
      await assertEndsAfterClose(m, pid, /unmounted from outside/);
      assert.deepEqual((await socketsOf(A, m.mnt)).all, [detachedSockets.mount], 'the detached socket went with its daemon');
      assert.equal(await again.pid(), newPid, 'the new mount is still the one status shows');
      assertOk(await again.umount());
      const none = await A.cli(['status', m.mnt], { timeoutMs: 15_000 });
      assert.equal(none.code, 1);
      assert.match(none.stderr, /no jigdofs daemon for /, 'nothing mounted, no detached daemon: the old answer');
    } finally {
      await reader.close().catch(() => undefined);
      killQuietly(pid);
      await again?.cleanup();
      await m.cleanup();
      A.close();
    }
  });
}
