/**
 * The guards of a mount that need no FUSE: the control socket folder check, the "unmounted from outside"
 * watch when /proc/mounts cannot be read and when another daemon mounted on the path, a mount's daemon stopped or gone, the --allow-other check, and the bound on open part files.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { checkedControlDir, controlDir, UntrustedControlDir } from '../../src/fuse/control-files.js';
import { allowOtherProblem, mountedType, mountHealth, watchUnmount } from '../../src/fuse/mounts.js';
import { daemonMount, daemonPid } from '../../src/fuse/mount-source.js';
import { pidStopped } from '../../src/util/pid.js';
import { spawn, spawnSync } from 'node:child_process';
import { ImageLayout, type PartNeed } from '../../src/image/layout.js';
import { LINGERING_HANDLES, OPEN_HANDLES, PartStore } from '../../src/sources/part-store.js';
import { HashIndex } from '../../src/sources/hash-index.js';
import { verifyLocalCopy } from '../../src/sources/verified-copy.js';
import { checksumKey } from '../../src/format/checksum.js';
import { createHash } from 'node:crypto';

const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-guards-'));
after(() => rmSync(work, { recursive: true, force: true }));

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Runs `fn` with TMPDIR at a fresh folder and no XDG_RUNTIME_DIR (the control folder is then <TMPDIR>/jigdofs-<uid>). */
function withTmp<T>(fn: (tmp: string) => T): T {
  const tmp = mkdtempSync(path.join(work, 'tmp-'));
  const saved = { TMPDIR: process.env.TMPDIR, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR };
  process.env.TMPDIR = tmp;
  delete process.env.XDG_RUNTIME_DIR;
  try {
    return fn(tmp);
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
}

describe('control socket folder without XDG_RUNTIME_DIR', () => {
  const uid = process.getuid!();
  test('is per user, made 0700', () => {
    withTmp((tmp) => {
      assert.equal(controlDir(), path.join(tmp, `jigdofs-${uid}`));
      assert.equal(checkedControlDir(true), controlDir());
    });
  });
  test('owned by another user, open to others, or a symlink: refused, naming the folder', { skip: uid !== 0 && 'needs root (chown)' }, () => {
    const cases: Array<[string, (dir: string) => void, RegExp]> = [
      ['another owner', (d) => (mkdirSync(d, { mode: 0o700 }), chownSync(d, 65534, 65534)), /owned by uid 65534/],
      ['mode 0777', (d) => (mkdirSync(d), chmodSync(d, 0o777)), /mode 0777, not 0700/],
      ['a symlink', (d) => (mkdirSync(`${d}.real`, { mode: 0o700 }), symlinkSync(`${d}.real`, d)), /symbolic link/],
      ['a file', (d) => writeFileSync(d, ''), /not a directory/],
    ];
    for (const [what, plant, problem] of cases) {
      withTmp(() => {
        const dir = controlDir();
        plant(dir);
        for (const create of [true, false]) {
          assert.throws(() => checkedControlDir(create), (err: Error) => {
            assert.ok(err instanceof UntrustedControlDir, `${what}: ${err.message}`);
            assert.ok(err.message.startsWith(`${dir}: `), err.message);
            assert.match(err.message, problem);
            return true;
          }, what);
        }
      });
    }
  });
});

describe('control socket folder under an XDG_RUNTIME_DIR that cannot hold it', () => {
  test('one line naming the folder and the variable (the old code threw mkdir\'s raw error); under /proc it ends', { skip: process.getuid!() !== 0 && 'needs root (/sys refuses even root)' }, () => {
    const control = new URL('../../src/fuse/control-files.ts', import.meta.url).href;
    for (const [runtime, code] of [['/sys/jigdofs-none/x', 'EPERM'], ['/proc/jigdofs-none/x', 'ENOENT']] as const) {
      // In a child, with a time limit: Node's own recursive mkdirSync never returned under /proc.
      const script = `const { checkedControlDir } = await import(${JSON.stringify(control)}); try { checkedControlDir(true); } catch (err) { console.log(err.message); }`;
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, XDG_RUNTIME_DIR: runtime } });
      assert.equal(r.signal, null, `${runtime}: ended by ${r.signal}`);
      assert.equal(r.stdout.trim(), `${runtime}/jigdofs: cannot create the control socket folder (${code}) (XDG_RUNTIME_DIR=${runtime}: unset it, or set it to a private folder of yours)`);
    }
  });
});

describe('the outside-unmount watch', () => {
  const MINE = { source: 'jigdofs-42', type: 'fuse.jigdofs' };
  const line = (mnt: string) => `jigdofs-42 ${mnt} fuse.jigdofs ro,nosuid,nodev 0 0\n`;
  test('a /proc/mounts that cannot be read is "unknown", never an unmount', async () => {
    const emfile = () => Promise.reject(Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' }));
    await assert.rejects(mountedType('/m', emfile), /\/proc\/mounts: cannot read it \(EMFILE\)/);
    let gone = 0;
    let unknown = 0;
    let reads = 0;
    let failing = true;
    const read = () => (reads++, failing ? emfile() : Promise.resolve(line('/m')));
    const stop = watchUnmount('/m', MINE, () => gone++, { intervalMs: 5, read, onUnknown: () => unknown++ });
    try {
      await waitFor(() => unknown >= 10, 5000);
      assert.equal(gone, 0);
      failing = false; // readable again and still mounted: still nothing
      const at = reads;
      await waitFor(() => reads >= at + 5, 5000);
      assert.equal(gone, 0);
    } finally {
      stop();
    }
  });
  test('a mount gone from /proc/mounts ends the watch once', async () => {
    let gone = 0;
    let text = line('/m');
    const stop = watchUnmount('/m', MINE, () => gone++, { intervalMs: 5, read: () => Promise.resolve(text) });
    try {
      text = line('/other');
      await waitFor(() => gone > 0, 5000);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(gone, 1);
    } finally {
      stop();
    }
  });
});

describe('whose mount it is', () => {
  const MINE = { source: 'jigdofs-42', type: 'fuse.jigdofs' };
  test('a mount made on the path by another daemon since (after a lazy detach of ours) ends the watch', async () => {
    let gone = 0;
    let text = 'jigdofs-42 /m fuse.jigdofs ro 0 0\n';
    const stop = watchUnmount('/m', MINE, () => gone++, { intervalMs: 5, read: () => Promise.resolve(text) });
    try {
      text = 'jigdofs-43 /m fuse.jigdofs ro 0 0\n';
      await waitFor(() => gone > 0, 5000);
    } finally {
      stop();
    }
    // Ours under another (something mounted over it) is still ours: the watch goes on.
    text = 'jigdofs-42 /m fuse.jigdofs ro 0 0\nother /m ext4 rw 0 0\n';
    let again = 0;
    let reads = 0;
    const stop2 = watchUnmount('/m', MINE, () => again++, { intervalMs: 5, read: () => (reads++, Promise.resolve(text)) });
    try {
      await waitFor(() => reads >= 5, 5000);
      assert.equal(again, 0);
    } finally {
      stop2();
    }
  });
  test("a mount's source names its daemon; nothing else is read as a pid", () => {
    assert.deepEqual(daemonMount(1234), { source: 'jigdofs-1234', type: 'fuse.jigdofs' });
    assert.equal(daemonPid('jigdofs-1234'), 1234);
    for (const other of ['jigdofs', 'jigdofs-', 'jigdofs-0', 'jigdofs-12x', 'xjigdofs-12', 'jigdofs-12345678901', '/dev/sda1']) {
      assert.equal(daemonPid(other), undefined, other);
    }
  });
  test('a stopped daemon is told without looking into its mount; for one not running here, the look decides', async () => {
    const dir = mkdtempSync(path.join(work, 'health-'));
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => child.once('spawn', resolve));
      const entry = daemonMount(child.pid!);
      assert.equal(await mountHealth(dir, entry), 'serving');
      child.kill('SIGSTOP');
      await waitFor(() => pidStopped(child.pid!), 5000);
      assert.equal(await mountHealth(dir, entry), 'stopped');
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      // Not running here: the look decides (a daemon in another pid namespace may serve it): this folder answers.
      assert.equal(await mountHealth(dir, entry), 'serving');
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('--allow-other', () => {
  const conf = (text: string) => {
    const f = path.join(mkdtempSync(path.join(work, 'conf-')), 'fuse.conf');
    writeFileSync(f, text);
    return f;
  };
  test('needs root or user_allow_other in fuse.conf; the refusal names fuse.conf and what to do', async () => {
    const commented = conf('# user_allow_other - lets users...\n#user_allow_other\nmount_max = 1000\n');
    const problem = await allowOtherProblem(1000, commented);
    assert.ok(problem?.startsWith(`${commented}: `), problem);
    assert.match(problem!, /--allow-other needs a user_allow_other line/);
    assert.match((await allowOtherProblem(1000, path.join(work, 'no-such.conf')))!, /user_allow_other/);
    assert.equal(await allowOtherProblem(1000, conf('mount_max = 10\n  user_allow_other  \n')), undefined);
    assert.equal(await allowOtherProblem(0, commented), undefined);
  });
});

/** `count` parts of 100 bytes, each a file of its own found by a local provider, behind a PartStore. */
async function manyParts(count: number) {
  const dir = mkdtempSync(path.join(work, 'parts-'));
  const parts = new Map<string, PartNeed>();
  // Part i: 100 bytes of i & 0xff, told apart by its number in the first two bytes (keys are checksums).
  const bytesOf = (i: number): Buffer => {
    const b = Buffer.alloc(100, i & 0xff);
    b.writeUInt16BE(i, 0);
    return b;
  };
  const keys: string[] = [];
  for (let i = 0; i < count; i++) {
    writeFileSync(path.join(dir, `p${i}`), bytesOf(i));
    const sum = createHash('md5').update(bytesOf(i)).digest();
    keys.push(checksumKey(sum));
    parts.set(keys[i]!, { key: keys[i]!, sum, length: 100, offsets: [i * 100] });
  }
  const layout = new ImageLayout(count * 100, 'md5', Buffer.alloc(16), [], parts);
  const index = await HashIndex.load(undefined);
  const hash = async (file: string) => createHash('md5').update(readFileSync(file)).digest();
  const provider = { name: 'test', find: async (key: string) => {
    const file = path.join(dir, `p${keys.indexOf(key)}`);
    return (await verifyLocalCopy(index, hash, 'md5', { file, offset: 0, length: 100, whole: true }, key))?.copy;
  } };
  return { store: new PartStore(layout, [provider]), keys, bytesOf, count };
}

describe('open part files', () => {
  test('an evicted handle is closed as soon as no read uses it', async () => {
    const count = OPEN_HANDLES * 3;
    const { store, keys, bytesOf } = await manyParts(count);
    const fds = () => readdirSync('/proc/self/fd').length;
    const baseline = fds();
    let most = 0;
    try {
      for (let pass = 0; pass < 2; pass++) {
        for (let i = 0; i < count; i++) {
          const buf = Buffer.alloc(100);
          await store.readInto(keys[i]!, 0, 100, buf, 0);
          assert.ok(buf.equals(bytesOf(i)), `part ${i}`);
          most = Math.max(most, fds() - baseline);
        }
      }
      // Closing is asynchronous (a promise away): let the last ones finish, then none beyond the LRU stays.
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(most <= OPEN_HANDLES + 8, `${most} files open at most, for ${OPEN_HANDLES} kept`);
      assert.ok(fds() - baseline <= OPEN_HANDLES, `${fds() - baseline} files still open`);
      // Concurrent reads of more parts than the LRU holds (a read-ahead block of small parts does this):
      // every one gets its bytes (no handle closed under a read), and reads wait rather than open one file each.
      let mostConcurrent = 0;
      const sampler = setInterval(() => (mostConcurrent = Math.max(mostConcurrent, fds() - baseline)), 1);
      try {
        for (let round = 0; round < 3; round++) {
          const bufs = Array.from({ length: count }, () => Buffer.alloc(100));
          await Promise.all(bufs.map((b, i) => store.readInto(keys[(i + round * 50) % count]!, 0, 100, b, 0)));
          bufs.forEach((b, i) => assert.ok(b.equals(bytesOf((i + round * 50) % count)), `concurrent part ${i}`));
        }
      } finally {
        clearInterval(sampler);
      }
      assert.ok(mostConcurrent > 0, 'sampled');
      assert.ok(mostConcurrent <= OPEN_HANDLES + LINGERING_HANDLES + 1, `${mostConcurrent} files open at most with ${count} concurrent reads`);
    } finally {
      await store.close();
    }
    assert.ok(fds() <= baseline, 'close() closes every part file');
  });

  test('reads waiting for a lingering handle to close all go on once they can: three reads of each part at once', { timeout: 20_000 }, async () => {
    const { store, keys, bytesOf, count } = await manyParts(OPEN_HANDLES * 3);
    try {
      for (let round = 0; round < 3; round++) {
        const reads = keys.flatMap((key, i) => [0, 1, 2].map(() => ({ i, buf: Buffer.alloc(100), key })));
        await Promise.all(reads.map(({ buf, key }) => store.readInto(key, 0, 100, buf, 0)));
        for (const { i, buf } of reads) assert.ok(buf.equals(bytesOf(i)), `part ${i} of ${count}`);
      }
    } finally {
      await store.close();
    }
  });
});
