/**
 * Mounts under hostile conditions (issue 7): another user's control socket folder, a symlinked
 * mountpoint, many parts under a low file descriptor limit, umount of a busy mount, a non-empty
 * mountpoint. Real FUSE mounts through the CLI; needs root and /dev/fuse.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { controlSocketPath } from '../../src/fuse/control-files.js';
import { MAX_CONTROL_CONNECTIONS, REQUEST_MS } from '../../src/fuse/control.js';
import { fusermountUnmount } from '../../src/fuse/mounts.js';
import { LINGERING_HANDLES, OPEN_HANDLES } from '../../src/sources/part-store.js';
import { buildFixtures, type FixtureSet } from '../helpers/fixtures.js';
import { assertCleanFailure, assertOk, BIN, prng, runCli, SAMPLE_PARTS, SAMPLES, type CliResult } from '../helpers/cli.js';
import { forceUnmount, isMounted, listenSilently, mountJigdo, type SilentListener } from '../helpers/mount.js';
import { md5hex as md5 } from '../helpers/hash.js';
import { pidAlive } from '../../src/util/pid.js';
import { sleep, waitFor } from '../helpers/network.js';

const run = promisify(execFile);
const uid = process.getuid!();

let fx: FixtureSet;
let work: string;

before(async () => {
  fx = await buildFixtures();
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-hostile-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});


/** The environment of a user with no XDG_RUNTIME_DIR and its own temp folder (so the folders planted here touch no other test). */
async function envWithTmp(): Promise<{ env: NodeJS.ProcessEnv; tmp: string }> {
  const tmp = await mkdtemp(path.join(work, 'tmp-'));
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, XDG_CACHE_HOME: tmp, XDG_CONFIG_HOME: tmp, JIGDOFS_DEBUG: '' };
  delete env.XDG_RUNTIME_DIR;
  return { env, tmp };
}

/**
 * What another local user can do in a shared temp folder: own the control socket folder (today's
 * `jigdofs-<uid>` and the old shared `jigdofs`) and listen there as the daemon of `mnt`, answering
 * anything. Counts the connections it gets.
 */
async function plantFakeDaemon(tmp: string, mnt: string): Promise<{ connections: () => number; close: () => void }> {
  let connections = 0;
  const servers: Server[] = [];
  for (const name of [`jigdofs-${uid}`, 'jigdofs']) {
    const dir = path.join(tmp, name);
    mkdirSync(dir, { mode: 0o700 });
    const server = createServer((s) => {
      connections++;
      s.end(`${JSON.stringify({ result: { mountpoint: mnt, pid: 1, uptimeSeconds: 0, rssBytes: 0, images: [], unmounting: true } })}\n`);
    });
    const sock = controlSocketPath(mnt, dir);
    await new Promise<void>((r) => server.listen(sock, r));
    chownSync(sock, 65534, 65534);
    chownSync(dir, 65534, 65534);
    servers.push(server);
  }
  return { connections: () => connections, close: () => servers.forEach((s) => s.close()) };
}

describe('control socket folder without XDG_RUNTIME_DIR (item 7)', () => {
  test('a mount works: the per-user folder is 0700 and ours; status and umount find the daemon', async () => {
    const { env, tmp } = await envWithTmp();
    const v = fx.variants['jf-md5-gzip'];
    const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir], { env });
    try {
      const dir = path.join(tmp, `jigdofs-${uid}`);
      const st = lstatSync(dir);
      assert.ok(st.isDirectory());
      assert.equal(st.uid, uid);
      assert.equal(st.mode & 0o777, 0o700);
      assert.ok(lstatSync(controlSocketPath(m.mnt, dir)).isSocket());
      assert.equal(md5(await readFile(m.file('image.iso'))), v.imageMd5);
      const pid = await m.pid();
      assertOk(await m.umount());
      assert.equal(await isMounted(m.mnt), false);
      await waitFor(() => !pidAlive(pid), 5000, 'the daemon to end');
    } finally {
      await m.cleanup();
    }
  });

  test("another user's folder (or one open to all) is refused: mount fails cleanly, nothing stays mounted", async () => {
    const v = fx.variants['jf-md5-gzip'];
    for (const [what, spoil, problem] of [
      ['owned by nobody', (d: string) => chownSync(d, 65534, 65534), /owned by uid 65534/],
      ['mode 0777', (d: string) => chmodSync(d, 0o777), /mode 0777, not 0700/],
    ] as const) {
      const { env, tmp } = await envWithTmp();
      const dir = path.join(tmp, `jigdofs-${uid}`);
      mkdirSync(dir, { mode: 0o700 });
      spoil(dir);
      const mnt = path.join(tmp, 'mnt');
      await mkdir(mnt);
      const cache = path.join(tmp, 'cache');
      const r = await runCli(['mount', v.jigdo, mnt, '--scan', v.partsDir, '--cache-dir', cache], { env });
      try {
        assertCleanFailure(r, dir, problem);
        assert.equal(await isMounted(mnt), false, what);
        assert.equal(await stat(cache).then(() => 'exists', () => 'absent'), 'absent', `${what}: nothing left in the cache`);
      } finally {
        await forceUnmount(mnt);
      }
    }
  });

  test('status and umount never talk to a socket planted in a folder someone else owns', async () => {
    const v = fx.variants['jf-md5-gzip'];
    const mine = await envWithTmp();
    const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir], { env: mine.env });
    const other = await envWithTmp(); // the same user, run with a temp folder another user got to first
    const fake = await plantFakeDaemon(other.tmp, m.mnt);
    try {
      const pid = await m.pid();
      const status = await runCli(['status', m.mnt], { env: other.env });
      assertCleanFailure(status, path.join(other.tmp, `jigdofs-${uid}`), /owned by uid 65534.*refusing/);
      const umount = await runCli(['umount', m.mnt], { env: other.env, timeoutMs: 30_000 });
      assert.equal(umount.code, 0, umount.stderr); // unmounted from outside (fusermount), the daemon notices
      assert.equal(fake.connections(), 0, 'a planted socket was asked');
      assert.equal(await isMounted(m.mnt), false);
      await waitFor(() => !pidAlive(pid), 5000, 'the daemon to end');
    } finally {
      fake.close();
      await m.cleanup();
    }
  });
});

describe('the control socket against a client of the same user that sends nothing', () => {
  test('idle connections are closed after REQUEST_MS and at most MAX_CONTROL_CONNECTIONS are held: status works after', async () => {
    const { env, tmp } = await envWithTmp();
    const v = fx.variants['jf-md5-gzip'];
    const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir], { env });
    const sockets: Socket[] = [];
    try {
      const pid = await m.pid();
      const fds = async (): Promise<number> => (await readdir(`/proc/${pid}/fd`)).length;
      const before = await fds();
      const sock = controlSocketPath(m.mnt, path.join(tmp, `jigdofs-${uid}`));
      let closed = 0;
      for (let i = 0; i < 200; i++) {
        const c = connect(sock);
        c.on('error', () => undefined);
        c.on('close', () => closed++);
        sockets.push(c);
      }
      await sleep(1000);
      const held = (await fds()) - before;
      assert.ok(held <= MAX_CONTROL_CONNECTIONS + 4, `the daemon holds ${held} more descriptors for 200 idle connections`);
      await waitFor(() => closed === 200, REQUEST_MS + 5000, 'every idle connection to be closed');
      assertOk(await runCli(['status', m.mnt], { env }));
    } finally {
      sockets.forEach((c) => c.destroy());
      await m.cleanup();
    }
  });
});

describe('a mountpoint reached through a symlink (item 8)', () => {
  test('mount, status, read and umount work through the link and the real path; the daemon stays up', async () => {
    const v = fx.variants['jf-md5-gzip'];
    const real = path.join(work, 'real-mnt');
    const link = path.join(work, 'link-mnt');
    await mkdir(real);
    await symlink(real, link);
    try {
      for (const umountVia of [link, real]) {
        const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir], { mnt: link });
        try {
          assert.ok(await isMounted(real), 'mounted at the real path');
          const pid = await m.pid();
          // The daemon's watch looks every second: one that missed the real path would be gone by now.
          await new Promise((r) => setTimeout(r, 2500));
          assert.ok(pidAlive(pid), 'the daemon is still running');
          for (const via of [link, real]) {
            const s = await runCli(['status', via, '--json']);
            assertOk(s);
            assert.equal((JSON.parse(s.stdout) as { pid: number; mountpoint: string }).pid, pid);
            assert.equal((JSON.parse(s.stdout) as { mountpoint: string }).mountpoint, real);
          }
          assert.equal(md5(await readFile(path.join(link, 'image.iso'))), v.imageMd5);
          assertOk(await runCli(['umount', umountVia], { timeoutMs: 30_000 }));
          assert.equal(await isMounted(real), false, `umount via ${umountVia}`);
          await waitFor(() => !pidAlive(pid), 5000, 'the daemon to end');
        } finally {
          await forceUnmount(real);
          await m.cleanup();
        }
      }
    } finally {
      await rm(link, { force: true });
    }
  });
});

/**
 * An image of `count` distinct parts of a few KiB each (jigdo-file make-template), so that a pass over
 * it opens many more part files than the open-handle LRU keeps.
 */
async function manyPartsJigdo(dir: string, count: number): Promise<{ jigdo: string; parts: string; image: Buffer }> {
  const parts = path.join(dir, 'parts');
  await mkdir(parts, { recursive: true });
  const rand = prng(7);
  const chunks: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const b = Buffer.alloc(2048 + i * 8);
    for (let j = 0; j < b.length; j += 4) b.writeUInt32LE(Math.floor(rand() * 2 ** 32), j);
    await writeFile(path.join(parts, `p${i}.bin`), b);
    chunks.push(b, Buffer.from(`-- gap ${i} --`));
  }
  const image = Buffer.concat(chunks);
  await writeFile(path.join(dir, 'many.img'), image);
  await run('jigdo-file', ['make-template', '-r', 'quiet', '--force', '--no-cache', '--image=many.img', '--jigdo=many.jigdo',
    '--template=many.template', '--label', 'Parts=parts', 'parts//'], { cwd: dir });
  return { jigdo: path.join(dir, 'many.jigdo'), parts, image };
}

const openFds = async (pid: number): Promise<number> => (await readdir(`/proc/${pid}/fd`)).length;

describe('open files of a mount reading many parts (item 9)', () => {
  test('direct reads of 1,200 parts under a low fd limit: exact bytes, fds bounded, the mount stays', async () => {
    const dir = await mkdtemp(path.join(work, 'many-'));
    const { jigdo, parts, image } = await manyPartsJigdo(dir, 1200);
    const m = await mountJigdo(jigdo, ['--scan', parts]);
    try {
      const pid = await m.pid();
      const file = m.file('many.img');
      // Room for the handles kept and those still in use after eviction, far below one per part (1,200).
      const limit = (await openFds(pid)) + OPEN_HANDLES + LINGERING_HANDLES + 32;
      await run('prlimit', ['--pid', String(pid), `--nofile=${limit}:${limit}`]);
      let most = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          most = Math.max(most, await openFds(pid).catch(() => 0));
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      try {
        for (let pass = 0; pass < 3; pass++) {
          const dd = await run('sh', ['-c', `dd if="${file}" iflag=direct bs=64k status=none | md5sum`]);
          assert.equal(dd.stdout.split(' ')[0], md5(image), `pass ${pass}`);
        }
      } finally {
        sampling = false;
        await sampler;
      }
      assert.ok(most < limit, `${most} fds open at most (limit ${limit})`);
      await new Promise((r) => setTimeout(r, 1200)); // one look of the outside-unmount watch, after the reads
      assert.ok(pidAlive(pid) && (await isMounted(m.mnt)), 'the mount is still up');
      assert.equal((await m.status()).pid, pid);
    } finally {
      await m.cleanup();
    }
  });
});

describe('umount of a busy mount (item 11)', () => {
  test('is refused with "busy" while the image is open; --lazy detaches it anyway, and the reader is served until it closes the image', async () => {
    const v = fx.variants['jf-md5-gzip'];
    const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir]);
    let pid: number | undefined;
    try {
      pid = await m.pid();
      const reader = await open(m.file('image.iso'), 'r');
      try {
        const busy = await runCli(['umount', m.mnt], { timeoutMs: 30_000 });
        assertCleanFailure(busy, m.mnt, /busy.*--lazy/);
        assert.ok(await isMounted(m.mnt), 'still mounted');
        const buf = Buffer.alloc(4096);
        await reader.read(buf, 0, 4096, 0); // and still served to the reader
        const image = await readFile(v.image);
        assert.ok(buf.equals(image.subarray(0, 4096)));
        // Like umount -l: detached now, and the CLI returns then (it does not wait for a daemon that serves on).
        const started = Date.now();
        const lazy = await runCli(['umount', '--lazy', m.mnt], { timeoutMs: 30_000 });
        assertOk(lazy);
        assert.ok(Date.now() - started < 5000, `umount --lazy took ${Date.now() - started} ms`);
        assert.match(lazy.stderr, new RegExp(`${m.mnt}: detached; its daemon \\(pid ${pid}\\) ends once the open file is closed`));
        assert.equal(await isMounted(m.mnt), false);
        await new Promise((r) => setTimeout(r, 1200)); // one look of the outside-unmount watch
        assert.ok(pidAlive(pid), 'the daemon serves the open image');
        const rest = Buffer.alloc(image.length);
        const { bytesRead } = await reader.read(rest, 0, rest.length, 0);
        assert.equal(bytesRead, image.length);
        assert.equal(md5(rest), md5(image), 'the whole image, read after the detach');
      } finally {
        await reader.close().catch(() => undefined);
      }
      await waitFor(() => !pidAlive(pid!), 5000, 'the daemon to end once the image was closed');
      assert.match(await m.log(), /unmounting .*\(jigdofs umount --lazy; (the last open file was closed|the kernel ended the connection: no file is open)\)/);
    } finally {
      if (pid && pidAlive(pid)) process.kill(pid, 'SIGTERM');
      await m.cleanup();
    }
  });

  test('--lazy with nothing open: the daemon ends, and umount waits for it as a plain umount does', async () => {
    const v = fx.variants['jf-md5-gzip'];
    const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir]);
    try {
      const pid = await m.pid();
      const lazy = await runCli(['umount', '--lazy', m.mnt], { timeoutMs: 30_000 });
      assertOk(lazy);
      assert.equal(lazy.stderr, '');
      assert.equal(await isMounted(m.mnt), false);
      assert.equal(pidAlive(pid), false, 'umount returned once the daemon had ended');
    } finally {
      await m.cleanup();
    }
  });
});

describe('a mountpoint whose path holds the word "busy"', () => {
  // The daemon's refusal and fusermount's EBUSY were told by /busy/ on messages that name the mountpoint.
  test('with its daemon out of reach (another XDG_RUNTIME_DIR), umount unmounts it from outside instead of calling it busy', async () => {
    const v = fx.variants['jf-md5-gzip'];
    const mnt = path.join(work, 'busybox-mnt');
    await mkdir(mnt);
    // The mount's socket in a runtime folder of its own: one the umount below does not look in.
    const own = await mkdtemp(path.join(tmpdir(), 'jigdofs-xdg-'));
    chmodSync(own, 0o700);
    const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir], { mnt, env: { ...process.env, XDG_RUNTIME_DIR: own } });
    try {
      const pid = await m.pid();
      const elsewhere = await mkdtemp(path.join(tmpdir(), 'jigdofs-xdg-'));
      chmodSync(elsewhere, 0o700);
      assertOk(await runCli(['umount', mnt], { timeoutMs: 30_000, env: { ...process.env, XDG_RUNTIME_DIR: elsewhere } }));
      assert.equal(await isMounted(mnt), false);
      await waitFor(() => !pidAlive(pid), 5000, 'the daemon to end');
      await rm(elsewhere, { recursive: true, force: true });
    } finally {
      await m.cleanup();
      await rm(own, { recursive: true, force: true });
    }
  });
});

describe('an unmount that races another one', () => {
  // Seen in bench-mount.sh: `jigdofs umount` gave up waiting for the daemon's answer, fell back to its own
  // `fusermount -u`, and the daemon's unmount, done meanwhile, made that fail: "Invalid argument", exit 1.
  test('fusermount -u of a mount already gone is done, not an error (the daemon and the CLI fallback both use it)', async () => {
    const v = fx.variants['jf-md5-gzip'];
    const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir]);
    try {
      const pid = await m.pid();
      await run('fusermount', ['-uz', m.mnt]); // the other unmount wins the race
      assert.equal(await isMounted(m.mnt), false);
      await fusermountUnmount(m.mnt, false); // rejected with "Invalid argument" before
      await waitFor(() => !pidAlive(pid), 5000, 'the daemon to end');
    } finally {
      await m.cleanup();
    }
  });
});

describe('a daemon that takes the unmount request and does not answer', () => {
  // Seen in the soak test's churn: the daemon sat on the request for the whole wait, umount fell back to fusermount,
  // said nothing, and returned with the daemon still running (a script removing the cache next would race it).
  test('umount says so in one line, unmounts from outside, and returns once the daemon has ended', async () => {
    const { env, tmp } = await envWithTmp();
    const v = fx.variants['jf-md5-gzip'];
    const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir], { env });
    // The mount's socket name now leads to a listener that takes every request and never answers; the daemon's own
    // socket, unnamed, still listens (and is never reached).
    let silent: SilentListener | undefined;
    try {
      const pid = await m.pid();
      silent = await listenSilently(controlSocketPath(m.mnt, path.join(tmp, `jigdofs-${uid}`)));
      const r = await runCli(['umount', m.mnt], { timeoutMs: 30_000, env: { ...env, JIGDOFS_UMOUNT_WAIT: '1' } });
      assertOk(r);
      assert.equal(r.stderr, `jigdofs: ${m.mnt}: no answer from its jigdofs daemon in 1 s; unmounting with fusermount\n`);
      assert.ok(silent.taken() >= 1, 'the request went to the silent listener');
      assert.equal(await isMounted(m.mnt), false);
      assert.equal(pidAlive(pid), false, 'umount returned once the daemon had ended');
    } finally {
      silent?.close();
      await m.cleanup();
    }
  });
});

describe('mountpoints fuse refuses (item 13)', () => {
  test('a non-empty mountpoint: one line naming it, nothing mounted, nothing cached', async () => {
    const v = fx.variants['jf-md5-gzip'];
    const mnt = path.join(work, 'full');
    await mkdir(mnt);
    await writeFile(path.join(mnt, 'README'), 'not empty');
    const cache = path.join(work, 'full-cache');
    const r = await runCli(['mount', v.jigdo, mnt, '--scan', v.partsDir, '--cache-dir', cache]);
    try {
      assertCleanFailure(r, mnt, /not empty/);
      assert.equal(await isMounted(mnt), false);
      assert.equal(await stat(cache).then(() => 'exists', () => 'absent'), 'absent');
    } finally {
      await forceUnmount(mnt);
    }
  });
});

/** Runs the CLI as user nobody (setpriv), with a temp folder of its own; the result as runCli gives it. */
async function runAsNobody(args: string[], tmp: string): Promise<CliResult> {
  const started = Date.now();
  const env = { PATH: process.env.PATH, TMPDIR: tmp, HOME: tmp, XDG_CACHE_HOME: tmp, XDG_CONFIG_HOME: tmp };
  const argv = ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, ...args];
  return run('setpriv', argv, { env, timeout: 60_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, signal: null, stdout, stderr, timedOut: false, ms: Date.now() - started }),
    (e: { code?: number; stdout?: string; stderr?: string }) =>
      ({ code: typeof e.code === 'number' ? e.code : null, signal: null, stdout: e.stdout ?? '', stderr: e.stderr ?? '', timedOut: false, ms: Date.now() - started }),
  );
}

describe('--allow-other without user_allow_other (item 13)', () => {
  const allowed = (): boolean => /^\s*user_allow_other\s*$/m.test(readFileSync('/etc/fuse.conf', 'utf8'));
  test('a user other than root gets one line naming /etc/fuse.conf and what to do', { skip: (uid !== 0 || allowed()) && 'needs root, and no user_allow_other in /etc/fuse.conf' }, async () => {
    // Outside `work` (private to root), and with the repository's sample (readable by all): nobody can reach them.
    const tmp = await mkdtemp(path.join(tmpdir(), 'jigdofs-nobody-'));
    chmodSync(tmp, 0o777);
    const mnt = path.join(tmp, 'mnt');
    mkdirSync(mnt);
    chownSync(mnt, 65534, 65534);
    const jigdo = path.join(SAMPLES, 'jf-md5-gzip.jigdo');
    const r = await runAsNobody(['mount', jigdo, mnt, '--allow-other', '--scan', SAMPLE_PARTS, '--cache-dir', path.join(tmp, 'cache')], tmp);
    try {
      assertCleanFailure(r, '/etc/fuse.conf', /--allow-other needs a user_allow_other line/);
      assert.equal(await isMounted(mnt), false);
    } finally {
      await forceUnmount(mnt);
      await rm(tmp, { recursive: true, force: true });
    }
  });
});

describe('the daemon log (item 15)', () => {
  test('is created private (0600)', async () => {
    const v = fx.variants['jf-md5-gzip'];
    const m = await mountJigdo(v.jigdo, ['--scan', v.partsDir]);
    try {
      const logFile = /log (\S+)\)/.exec(m.mountResult.stderr)?.[1];
      assert.ok(logFile, m.mountResult.stderr);
      assert.equal((await stat(logFile)).mode & 0o777, 0o600);
    } finally {
      await m.cleanup();
    }
  });
});
