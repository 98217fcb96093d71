// The mount daemon's control socket (src/fuse/control.ts): one request line per connection, of bounded length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { askControl, askDetached, type ControlRequest } from '../../src/fuse/control-client.js';
import { checkedControlDir, controlSocketPath, detachedSocketPath, NoDaemon, takeOver } from '../../src/fuse/control-files.js';
import { serveControl } from '../../src/fuse/control.js';

/** What a raw client gets back for sending `data` (the connection kept open until the server ends it). */
function exchange(file: string, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(file, () => socket.write(data));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('end', () => {
      socket.destroy();
      resolve(text);
    });
    socket.on('error', reject);
    setTimeout(() => {
      socket.destroy();
      reject(new Error('the server never ended the connection'));
    }, 5000).unref();
  });
}

test('a request line that never ends, or one too long, is answered "bad request"; one line is one request', async () => {
  const runtime = mkdtempSync(path.join(tmpdir(), 'jigdofs-control-'));
  chmodSync(runtime, 0o700);
  const saved = process.env.XDG_RUNTIME_DIR;
  process.env.XDG_RUNTIME_DIR = runtime;
  const seen: ControlRequest[] = [];
  const mnt = path.join(runtime, 'mnt');
  const server = await serveControl(mnt, async (request) => {
    seen.push(request);
    return 'pong';
  });
  try {
    const file = controlSocketPath(mnt, checkedControlDir(false)!);
    assert.equal(await askControl(mnt, 'ping'), 'pong');
    const endless = await exchange(file, 'x'.repeat(1 << 20));
    assert.deepEqual(JSON.parse(endless), { error: 'bad request' });
    // A request, then more lines on the same connection: answered once, the rest not taken as requests.
    const twice = await exchange(file, `${JSON.stringify({ op: 'ping' })}\n${JSON.stringify({ op: 'status' })}\n`);
    assert.deepEqual(JSON.parse(twice), { result: 'pong' });
    assert.deepEqual(seen.map((r) => r.op), ['ping', 'ping']);
  } finally {
    server.close();
    if (saved === undefined) delete process.env.XDG_RUNTIME_DIR;
    else process.env.XDG_RUNTIME_DIR = saved;
    rmSync(runtime, { recursive: true, force: true });
  }
});

/** Runs `fn` with XDG_RUNTIME_DIR set to a fresh private folder; returns what it returns. */
async function withRuntime<T>(fn: (runtime: string) => Promise<T>): Promise<T> {
  const runtime = mkdtempSync(path.join(tmpdir(), 'jigdofs-control-'));
  chmodSync(runtime, 0o700);
  const saved = process.env.XDG_RUNTIME_DIR;
  process.env.XDG_RUNTIME_DIR = runtime;
  try {
    return await fn(runtime);
  } finally {
    if (saved === undefined) delete process.env.XDG_RUNTIME_DIR;
    else process.env.XDG_RUNTIME_DIR = saved;
    rmSync(runtime, { recursive: true, force: true });
  }
}

test("a second daemon on the same path is refused while the first answers, and never takes the first one's socket", async () => {
  await withRuntime(async (runtime) => {
    const mnt = path.join(runtime, 'mnt');
    const first = await serveControl(mnt, async () => 'first');
    try {
      const started = Date.now();
      await assert.rejects(serveControl(mnt, async () => 'second'), (err: Error) => {
        assert.match(err.message, /another jigdofs daemon holds the control socket/);
        return true;
      });
      assert.ok(Date.now() - started >= 2000, 'a live holder is waited for a while (it may be letting go)');
      assert.equal(await askControl(mnt, 'ping'), 'first');
    } finally {
      first.close();
    }
    // Let go: the name is free for the next one, and no file of either server is left behind.
    const next = await serveControl(mnt, async () => 'next');
    assert.equal(await askControl(mnt, 'ping'), 'next');
    next.close();
    assert.deepEqual(readdirSync(checkedControlDir(false)!), []);
  });
});

test("a server whose name was taken over (its daemon was stopped, its mount detached) leaves the new holder's socket when it closes", async () => {
  await withRuntime(async (runtime) => {
    const mnt = path.join(runtime, 'mnt');
    const file = controlSocketPath(mnt, checkedControlDir(true)!);
    // The stopped daemon: a socket that takes connections and never answers.
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(file, resolve));
    const old = await serveControl(mnt, async () => 'old'); // takes the silent one's name (it answers nothing)
    const oldIno = lstatSync(file).ino;
    silent.close(); // libuv unlinks the path it listened on: that is `old`'s socket now...
    assert.equal(existsSync(file), false, 'libuv unlinks by path: the reason servers listen on a name of their own');
    const renewed = await serveControl(mnt, async () => 'new'); // a dead name is taken over at once
    try {
      assert.notEqual(lstatSync(file).ino, oldIno);
      old.close(); // the late daemon ends: the name is not its any more
      assert.equal(await askControl(mnt, 'ping'), 'new');
    } finally {
      renewed.close();
    }
    assert.equal(existsSync(file), false);
  });
});

test("two daemons finding a dead daemon's socket: one takes the name, the other is refused (never both)", async () => {
  await withRuntime(async (runtime) => {
    const mnt = path.join(runtime, 'mnt');
    const file = controlSocketPath(mnt, checkedControlDir(true)!);
    for (let round = 0; round < 3; round++) {
      // A daemon killed with -9 leaves its socket file: nothing listens on it any more.
      const dead = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(file)}, () => process.kill(process.pid, 'SIGKILL'))`]);
      await new Promise((resolve) => dead.once('exit', resolve));
      assert.ok(lstatSync(file).isSocket(), 'the dead socket is there');
      const results = await Promise.allSettled([1, 2].map((n) => serveControl(mnt, async () => n)));
      const won = results.filter((r): r is PromiseFulfilledResult<Awaited<ReturnType<typeof serveControl>>> => r.status === 'fulfilled');
      assert.equal(won.length, 1, `round ${round}: exactly one claims the name (${results.map((r) => r.status).join(', ')})`);
      assert.ok(typeof (await askControl(mnt, 'ping')) === 'number', 'the name answers');
      won[0]!.value.close();
    }
  });
});

test("taking over a dead name leaves a live socket that another claimer linked there meanwhile", async () => {
  await withRuntime(async (runtime) => {
    const file = controlSocketPath(path.join(runtime, 'mnt'), checkedControlDir(true)!);
    // The dead socket was found (its inode noted), then another claimer removed it and linked its own: this one.
    const fresh = createServer((s) => s.end(`${JSON.stringify({ result: 'fresh' })}\n`));
    await new Promise<void>((resolve) => fresh.listen(file, resolve));
    const ino = lstatSync(file).ino;
    try {
      await takeOver(file, ino + 1);
      assert.equal(lstatSync(file).ino, ino, 'given back under its name');
      assert.equal(await askControl(path.join(runtime, 'mnt'), 'ping'), 'fresh');
      assert.deepEqual(readdirSync(path.dirname(file)).filter((n) => n.startsWith('.gone.')), [], 'nothing left aside');
      await takeOver(file, ino); // the one found dead: removed
      assert.equal(existsSync(file), false);
    } finally {
      fresh.close();
    }
  });
});

test("a detached daemon's server answers under a name of its own: the mount's name is free at once, askDetached finds it, a killed one's is removed", async () => {
  await withRuntime(async (runtime) => {
    const mnt = path.join(runtime, 'mnt');
    const dir = checkedControlDir(true)!;
    // A daemon detached earlier and killed with -9 left its detached socket: nothing listens on it.
    const killed = detachedSocketPath(mnt, dir, 999_999);
    const dead = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(killed)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    await new Promise((resolve) => dead.once('exit', resolve));
    const old = await serveControl(mnt, async () => 'old');
    old.detach();
    old.detach(); // (a second detach changes nothing)
    await assert.rejects(askControl(mnt, 'ping'), NoDaemon, 'nothing under the mount\'s name');
    const started = Date.now();
    const renewed = await serveControl(mnt, async () => 'new');
    try {
      assert.ok(Date.now() - started < 1000, 'the name was free: not waited for');
      assert.equal(await askControl(mnt, 'ping'), 'new');
      assert.deepEqual(await askDetached(mnt, 'ping'), ['old']);
      assert.deepEqual(readdirSync(dir).sort(), [controlSocketPath(mnt, dir), detachedSocketPath(mnt, dir)].map((f) => path.basename(f)).sort(), 'the killed one\'s is gone');
      assert.deepEqual(await askDetached(path.join(runtime, 'other'), 'ping'), [], 'another path has none');
    } finally {
      old.close();
      renewed.close();
    }
    assert.deepEqual(readdirSync(dir), [], 'each server removed its own name');
  });
});

test("asking a killed daemon (status, umount) says there is none and removes its socket, which only a new mount on the path removed", async () => {
  await withRuntime(async (runtime) => {
    const mnt = path.join(runtime, 'mnt');
    const file = controlSocketPath(mnt, checkedControlDir(true)!);
    const dead = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(file)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    await new Promise((resolve) => dead.once('exit', resolve));
    assert.ok(lstatSync(file).isSocket(), 'the dead socket is there');
    await assert.rejects(askControl(mnt, 'status'), (err: Error) => err instanceof NoDaemon && /ECONNREFUSED/.test(err.message));
    assert.throws(() => lstatSync(file), /ENOENT/, 'and is gone');
    await assert.rejects(askControl(mnt, 'status'), (err: Error) => err instanceof NoDaemon && /no control socket/.test(err.message));
  });
});
