/**
 * `jigdofs serve` under bounded loopback load (issue 12 items 2 and 4): 32 concurrent ranged clients over a
 * 50 MB image fetched lazily from a mirror, every byte compared; a client that stops reading does not make
 * the server read (and hold) the image ahead of it, and is cut after --send-timeout; pipelined requests on a
 * connection that closes give their slots back; connections over the cap are closed as they come.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { prng, randInt } from '../helpers/cli.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { sleep } from '../helpers/network.js';
import { execFileP, httpGet, startServe, type TestServer } from '../helpers/serve.js';

const random = (n: number, seed: number): Buffer => createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16)).update(Buffer.alloc(n));
const PARTS = 20;
const PART = 2_400_000;

let work: string;
let mirror: Mirror;
let image: Buffer;
let server: TestServer;
let url: string;

/** A 50 MB image of 20 parts and raw bytes between them, made with jigdo-file; parts on a loopback mirror. */
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-serve-load-'));
  const partsDir = path.join(work, 'tree', 'parts');
  await mkdir(partsDir, { recursive: true });
  const chunks: Buffer[] = [];
  for (let i = 0; i < PARTS; i++) {
    const part = random(PART, i + 1);
    const fh = await open(path.join(partsDir, `p${String(i).padStart(2, '0')}.bin`), 'w');
    await fh.write(part);
    await fh.close();
    chunks.push(random(50_000, 100 + i), part);
  }
  image = Buffer.concat(chunks);
  const fh = await open(path.join(work, 'big.iso'), 'w');
  await fh.write(image);
  await fh.close();
  await execFileP('jigdo-file', [
    'make-template', '-r', 'quiet', '--force', '--no-cache', '--image=big.iso', '--jigdo=big.jigdo', '--template=big.template',
    '--label', 'Parts=tree/parts', '--uri', 'Parts=http://127.0.0.1:8765/parts/', 'tree/parts//',
  ], { cwd: work });
  mirror = await startMirror({ root: path.join(work, 'tree'), latencyMs: 20 });
  server = await serveBig('--max-clients', '64');
  url = `${server.url}big.iso`;
});

after(async () => {
  await server?.stop('SIGKILL');
  await mirror?.close();
  await rm(work, { recursive: true, force: true });
});

/** A server of big.jigdo whose parts come from the mirror, with `extra` flags. */
const serveBig = (...extra: string[]): Promise<TestServer> =>
  startServe([path.join(work, 'big.jigdo'), '--cache-dir', path.join(work, 'cache'), '--mirror', `Parts=${mirror.url}parts/`, ...extra]);

/** A raw connection to `serverUrl` that sends `request` `count` times at once and then reads nothing. */
function unreadConnection(serverUrl: string, request: string, count = 1): Socket {
  const socket = connect(Number(new URL(serverUrl).port), '127.0.0.1', () => socket.write(request.repeat(count)));
  socket.on('error', () => undefined);
  socket.pause();
  return socket;
}

test('32 concurrent ranged clients over the 50 MB image (lazy, from the mirror): every byte exact', async () => {
  const rand = prng(12);
  const jobs = Array.from({ length: 32 }, () => {
    const start = randInt(rand, image.length - 1);
    const len = 1 + randInt(rand, Math.min(6_000_000, image.length - start));
    return { start, end: start + len - 1 };
  });
  const results = await Promise.all(jobs.map((j) => httpGet(url, { Range: `bytes=${j.start}-${j.end}` })));
  results.forEach((r, i) => {
    const { start, end } = jobs[i]!;
    assert.equal(r.status, 206, `client ${i}`);
    assert.equal(r.headers['content-range'], `bytes ${start}-${end}/${image.length}`);
    assert.ok(!r.cut && r.body.equals(image.subarray(start, end + 1)), `client ${i}: bytes ${start}-${end}`);
  });
  const s = await server.status();
  assert.equal(s.server.aborted, 0);
  assert.equal(s.server.activeClients, 0);
});

test('a client that stops reading holds the server back (backpressure): the engine reads little past what the socket took', async () => {
  const before = (await server.status()).images[0]!.bytesServed;
  await new Promise<void>((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      res.once('data', () => {
        res.pause(); // stop reading: only the kernel's socket buffers fill
        void sleep(1500).then(async () => {
          const s = await server.status();
          const read = s.images[0]!.bytesServed - before;
          assert.equal(s.server.activeClients, 1);
          assert.ok(read < 24_000_000, `the engine read ${read} bytes for a client that stopped after its first chunk`);
          req.destroy();
          resolve();
        }).catch(reject);
      });
    });
    req.on('error', () => undefined);
    req.end();
  });
  // The server is fine afterwards: the whole image, exact.
  const full = await httpGet(url);
  assert.ok(full.body.equals(image));
  const s = await server.status();
  assert.ok(s.server.clientsGone >= 1);
  assert.equal(s.server.activeClients, 0);
});

test('requests pipelined on a connection that closes give their slots back (Node 20 closes only the first response)', async () => {
  const { port } = new URL(url);
  for (let c = 0; c < 10; c++) {
    await new Promise<void>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.end(`GET /big.iso HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(4), () => {
          socket.destroy();
          resolve();
        });
      });
      socket.on('error', reject);
    });
  }
  let active = -1;
  for (let i = 0; i < 50 && active !== 0; i++) {
    await sleep(100);
    active = (await server.status()).server.activeClients;
  }
  assert.equal(active, 0, 'every slot given back');
  const r = await httpGet(url, { Range: 'bytes=1000-1999' });
  assert.equal(r.status, 206);
  assert.ok(r.body.equals(image.subarray(1000, 2000)));
});

/** /proc/net/tcp's state of the loopback connection from local port `from` to `to` ('01': established), or undefined. */
const ESTABLISHED = '01';
async function tcpState(from: number, to: number): Promise<string | undefined> {
  const port = (p: number): string => `:${p.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of (await readFile('/proc/net/tcp', 'utf8')).split('\n').slice(1)) {
    const [, local, remote, state] = line.trim().split(/\s+/);
    if (local?.endsWith(port(from)) && remote?.endsWith(port(to))) return state;
  }
  return undefined;
}

test('one connection\'s pipelined requests are served one after the other on one slot, not all at once', async () => {
  // Node hands every pipelined request over at once: one connection with 64 whole-image GETs, read slowly, held every
  // --max-clients slot (the 63 queued answers had no socket, so no send timer ran) and everyone else got 503.
  const capped = await serveBig('--max-clients', '2');
  const socket = unreadConnection(capped.url, 'GET /big.iso HTTP/1.1\r\nHost: x\r\n\r\n', 4);
  try {
    let s = await capped.status();
    for (let i = 0; i < 50 && s.server.activeClients === 0; i++) {
      await sleep(100);
      s = await capped.status();
    }
    assert.equal(s.server.activeClients, 1, JSON.stringify(s.server));
    const r = await httpGet(`${capped.url}big.iso`, { Range: 'bytes=0-99' });
    assert.equal(r.status, 206, 'a second client is served');
    assert.ok(r.body.equals(image.subarray(0, 100)));
  } finally {
    socket.destroy();
    await capped.stop('SIGKILL');
  }
});

test('a connection that pipelines requests and reads no answer is cut after --send-timeout', async () => {
  // Short answers (the listing) were written with no send timer, and no timeout runs between requests: once Node
  // stopped reading the connection it stayed open for good, and enough of them filled the connection cap.
  const strict = await serveBig('--send-timeout', '1');
  const { port } = new URL(strict.url);
  const socket = unreadConnection(strict.url, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 40_000);
  try {
    await new Promise((r) => socket.once('connect', r));
    // (The client, reading nothing, cannot see the close: the server's side of the connection says it.)
    let state = await tcpState(Number(port), socket.localPort!);
    for (let i = 0; i < 150 && state === ESTABLISHED; i++) {
      await sleep(100);
      state = await tcpState(Number(port), socket.localPort!);
    }
    assert.notEqual(state, ESTABLISHED, 'the server closed its side of the connection within 15 s');
  } finally {
    socket.destroy();
    await strict.stop('SIGKILL');
  }
});

test('a client that takes none of the body for --send-timeout is cut, and its slot given back', async () => {
  const strict = await serveBig('--send-timeout', '1');
  try {
    // A raw connection that asks for the whole image and reads nothing: the kernel's buffers fill, our write waits.
    const socket = unreadConnection(strict.url, 'GET /big.iso HTTP/1.1\r\nHost: x\r\n\r\n');
    try {
      let s = await strict.status();
      for (let i = 0; i < 100 && !(s.server.requests >= 1 && s.server.activeClients === 0); i++) {
        await sleep(100);
        s = await strict.status();
      }
      assert.equal(s.server.activeClients, 0, 'cut within 10 s');
      // Counted as timed out, not as a client gone (it was counted so before), and what it took counts as sent.
      assert.equal(s.server.timedOut, 1, JSON.stringify(s.server));
      assert.equal(s.server.clientsGone, 0, JSON.stringify(s.server));
      assert.ok(s.server.bytesSent > 0, `the bytes the kernel took count as sent: ${JSON.stringify(s.server)}`);
    } finally {
      socket.destroy();
    }
    // A client that reads is not cut, even on a connection whose first byte waited for the mirror (no write was pending).
    const r = await httpGet(`${strict.url}big.iso`, { Range: 'bytes=30000000-30999999' });
    assert.equal(r.status, 206);
    assert.ok(!r.cut && r.body.equals(image.subarray(30_000_000, 31_000_000)));
  } finally {
    await strict.stop('SIGKILL');
  }
});

test('the 50 MB image read whole by curl equals the original', async () => {
  const file = path.join(work, 'curl.iso');
  await execFileP('curl', ['-sS', '-o', file, url]);
  assert.ok((await readFile(file)).equals(image));
});

test('connections over the cap are closed as they come, counted, and the server goes on serving', async () => {
  const capped = await serveBig('--max-clients', '1');
  const sockets: Array<ReturnType<typeof connect>> = [];
  try {
    const cap = (await capped.status()).server.maxConnections;
    assert.ok(cap >= 16 && cap <= 260, `one client: 4 waiting connections per client plus 256, at most half the open-file limit (${cap})`);
    const { port } = new URL(capped.url);
    let closedEarly = 0;
    // Idle connections that never send a request (a slowloris client), 40 over the cap.
    for (let i = 0; i < cap + 40; i++) {
      await new Promise<void>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => resolve());
        socket.on('close', () => closedEarly++);
        socket.on('error', () => undefined);
        socket.once('error', reject);
        sockets.push(socket);
      });
    }
    for (let i = 0; i < 50 && closedEarly < 40; i++) await sleep(50);
    assert.equal(closedEarly, 40, 'exactly the connections over the cap are closed');
    assert.equal((await capped.status()).server.connectionsDropped, 40);
    for (const s of sockets) s.destroy();
    await sleep(200);
    const r = await httpGet(`${capped.url}big.iso`, { Range: 'bytes=0-99' });
    assert.equal(r.status, 206);
    assert.ok(r.body.equals(image.subarray(0, 100)));
  } finally {
    for (const s of sockets) s.destroy();
    await capped.stop();
  }
});
