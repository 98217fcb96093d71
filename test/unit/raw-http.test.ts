/**
 * The fetch threads (src/network/raw-http): ranged GETs run on worker threads against real servers on
 * 127.0.0.1 (the fault mirror, and a raw TCP server where the test needs to control connections), bytes
 * written at their positions, hashed as they arrive, failures classified as the undici path classifies them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FetchError } from '../../src/network/fetch-error.js';
import { FetchThreads, NeedsFullClient, fetchThreadCount } from '../../src/network/raw-http/fetch-threads.js';
import { MAX_INTERIM_ANSWERS } from '../../src/network/raw-http/range-exchange.js';
import { parseResponseHead } from '../../src/network/raw-http/response-head.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';

const U = 'http://x/f';
const head = (text: string): ReturnType<typeof parseResponseHead> => parseResponseHead(U, Buffer.from(text), Buffer.byteLength(text));

describe('parseResponseHead', () => {
  test('waits for the blank line, then gives status, headers and where the body starts', () => {
    assert.equal(head('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n'), undefined);
    const text = 'HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello';
    assert.deepEqual(head(text), { status: 206, headers: { 'content-length': '5', 'x-a': '1, 2' }, close: false, length: text.indexOf('hello') });
  });

  test('knows when the connection cannot be reused', () => {
    assert.equal(head('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n')!.close, true);
    assert.equal(head('HTTP/1.0 200 OK\r\n\r\n')!.close, true);
    assert.equal(head('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n')!.close, false);
  });

  test('a malformed or endless head is a failure worth asking again (as undici reports its parser errors)', () => {
    for (const bad of ['ICY 200 OK\r\n\r\n', 'HTTP/1.1 2000 OK\r\n\r\n', 'HTTP/1.1 200 OK\r\nno colon\r\n\r\n']) {
      assert.throws(() => head(bad), (e: unknown) => e instanceof FetchError && e.kind === 'reset' && !e.permanent, bad);
    }
    const big = Buffer.alloc(70 * 1024, 'a');
    assert.throws(() => parseResponseHead(U, big, big.length), (e: unknown) => e instanceof FetchError && e.kind === 'reset');
  });
});

test('fetchThreadCount: JIGDOFS_HTTP_THREADS, else at most two', () => {
  assert.equal(fetchThreadCount({ JIGDOFS_HTTP_THREADS: '0' }), 0);
  assert.equal(fetchThreadCount({ JIGDOFS_HTTP_THREADS: '3' }), 3);
  assert.ok(fetchThreadCount({}) >= 1 && fetchThreadCount({}) <= 2);
});

describe('FetchThreads against real servers', () => {
  let dir: string;
  let mirror: Mirror;
  let threads: FetchThreads;
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const md5 = createHash('md5').update(data).digest();

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'raw-http-'));
    await writeFile(path.join(dir, 'f.bin'), data);
    mirror = await startMirror({ root: dir });
    threads = new FetchThreads(2);
  });
  after(async () => {
    await threads.close();
    await mirror.close();
    await rm(dir, { recursive: true, force: true });
  });

  let n = 0;
  async function into<T>(fn: (fh: FileHandle, file: string) => Promise<T>): Promise<T> {
    const file = path.join(dir, `out-${n++}`);
    const fh = await open(file, 'w+');
    try {
      return await fn(fh, file);
    } finally {
      await fh.close();
    }
  }
  const url = (): string => `${mirror.url}f.bin`;
  const failure = async (p: Promise<unknown>): Promise<FetchError> => {
    const e = await p.then(() => undefined, (err: unknown) => err);
    assert.ok(e instanceof FetchError, `expected a FetchError, got ${String(e)}`);
    return e;
  };

  test('a whole file: written, hashed as it arrived, progress up to its end', async () => {
    await into(async (fh, file) => {
      const seen: number[] = [];
      const r = await threads.fetchRange(url(), { start: 0, end: data.length, total: data.length }, fh.fd, (p) => seen.push(p), { hash: 'md5', timeoutMs: 5000 });
      assert.equal(r.end, data.length);
      assert.ok(r.digest?.equals(md5));
      assert.ok((await readFile(file)).equals(data));
      assert.equal(seen.at(-1), data.length);
      assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
    });
  });

  test('a range lands at its own position; no hash unless the whole file from 0 was asked', async () => {
    await into(async (fh, file) => {
      const r = await threads.fetchRange(url(), { start: 1000, end: 5000, total: data.length }, fh.fd, () => undefined, { hash: 'md5', timeoutMs: 5000 });
      assert.equal(r.end, 5000);
      assert.equal(r.digest, undefined);
      assert.ok((await readFile(file)).subarray(1000, 5000).equals(data.subarray(1000, 5000)));
      assert.equal(mirror.requests.at(-1)!.range, 'bytes=1000-4999');
    });
  });

  test('failures are classified as the undici path does: 404, wrong size, a cut, a stall', async () => {
    await into(async (fh) => {
      const missing = await failure(threads.fetchRange(`${mirror.url}nope`, { start: 0 }, fh.fd, () => undefined, { timeoutMs: 5000 }));
      assert.equal(missing.kind, 'not-found');
      const size = await failure(threads.fetchRange(url(), { start: 0, total: 10 }, fh.fd, () => undefined, { timeoutMs: 5000 }));
      assert.equal(size.kind, 'wrong-size');
      mirror.fault('/f.bin', { kind: 'reset', afterBytes: 100_000, times: 1 });
      let reached = 0;
      const cut = await failure(threads.fetchRange(url(), { start: 0, total: data.length }, fh.fd, (p) => (reached = p), { timeoutMs: 5000 }));
      assert.equal(cut.kind, 'reset');
      assert.ok(reached <= 100_000, `progress ${reached} beyond what was sent`);
      mirror.fault('/f.bin', { kind: 'stall', afterBytes: 10, times: 1 });
      const stall = await failure(threads.fetchRange(url(), { start: 0, total: data.length }, fh.fd, () => undefined, { timeoutMs: 300 }));
      assert.deepEqual([stall.kind, stall.message], ['timeout', 'stalled: no data in time']);
      // A busy answer's Retry-After crosses from the thread (HostLimits holds the host's requests by it).
      mirror.fault('/f.bin', { kind: 'status', code: 503, headers: { 'retry-after': '7' }, times: 1 });
      const busy = await failure(threads.fetchRange(url(), { start: 0, total: data.length }, fh.fd, () => undefined, { timeoutMs: 5000 }));
      assert.deepEqual([busy.kind, busy.status, busy.retryAfterMs], ['status', 503, 7000]);
    });
  });

  test('a redirect or a chunked body goes to the full client, and the origin stays with it', async () => {
    const other = await startMirror({ root: dir });
    const own = new FetchThreads(1);
    try {
      await into(async (fh) => {
        other.fault('/f.bin', { kind: 'redirect', to: '/g.bin', times: 1 });
        const u = `${other.url}f.bin`;
        assert.equal(own.takes(u), true);
        await assert.rejects(own.fetchRange(u, { start: 0 }, fh.fd, () => undefined, { timeoutMs: 5000 }), NeedsFullClient);
        assert.equal(own.takes(u), false, 'later requests to that origin go to undici');
        assert.equal(own.takes(url()), true, 'other origins do not');
        mirror.fault('/f.bin', { kind: 'endless', times: 1 });
        await assert.rejects(own.fetchRange(url(), { start: 0 }, fh.fd, () => undefined, { timeoutMs: 5000 }), NeedsFullClient);
        assert.equal(own.takes('https://x/f'), false);
      });
    } finally {
      await own.close();
      await other.close();
    }
  });

  test('interim answers nobody asked for (100 Continue) are read past, up to MAX_INTERIM_ANSWERS', async () => {
    // They went to undici, which drops the connection on a 100 ("bad response"): every part of such a mirror failed.
    const own = new FetchThreads(1);
    try {
      await into(async (fh, file) => {
        mirror.fault('/f.bin', { kind: 'continue', count: 2, times: 1 });
        const r = await own.fetchRange(url(), { start: 0, end: data.length, total: data.length }, fh.fd, () => undefined, { hash: 'md5', timeoutMs: 5000 });
        assert.ok(r.digest?.equals(md5));
        assert.ok((await readFile(file)).equals(data));
        assert.equal(own.takes(url()), true, 'the origin stays with the threads');
        mirror.fault('/f.bin', { kind: 'continue', count: MAX_INTERIM_ANSWERS + 1, times: 1 });
        const flood = await failure(own.fetchRange(url(), { start: 0, total: data.length }, fh.fd, () => undefined, { timeoutMs: 5000 }));
        assert.deepEqual([flood.kind, flood.message], ['reset', `more than ${MAX_INTERIM_ANSWERS} interim (1xx) answers before the answer`]);
      });
    } finally {
      await own.close();
    }
  });

  test('an abort ends the request as aborted', async () => {
    await into(async (fh) => {
      mirror.fault('/f.bin', { kind: 'stall', afterBytes: 10, times: 1 });
      const ac = new AbortController();
      const p = threads.fetchRange(url(), { start: 0 }, fh.fd, () => undefined, { signal: ac.signal, timeoutMs: 30_000 });
      setTimeout(() => ac.abort(), 100);
      assert.equal((await failure(p)).kind, 'aborted');
    });
  });

  test('a file that cannot be written is a local failure, not the mirror’s', async () => {
    const ro = await open(path.join(dir, 'f.bin'), 'r');
    try {
      assert.equal((await failure(threads.fetchRange(url(), { start: 0 }, ro.fd, () => undefined, { timeoutMs: 5000 }))).kind, 'local');
    } finally {
      await ro.close();
    }
  });
});

/**
 * A server that answers the first request on each connection and closes the connection, without a word, on the
 * second: what a keep-alive connection looks like when the server timed it out just as a request was sent.
 */
async function closingServer(body: Buffer): Promise<{ server: Server; url: string; connections: () => number }> {
  let connections = 0;
  const server = createServer((socket: Socket) => {
    connections++;
    let requests = 0;
    socket.on('data', (d) => {
      if (!d.includes('\r\n\r\n')) return;
      if (++requests > 1) return socket.destroy();
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
      socket.write(body);
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { server, url: `http://127.0.0.1:${port}/x`, connections: () => connections };
}

test('a kept-alive connection the server closed is retried on a new one', async () => {
  const body = Buffer.from('fourteen bytes');
  const { server, url, connections } = await closingServer(body);
  const threads = new FetchThreads(1);
  const dir = await mkdtemp(path.join(tmpdir(), 'raw-http-'));
  const fh = await open(path.join(dir, 'out'), 'w+');
  try {
    for (let i = 0; i < 3; i++) {
      const r = await threads.fetchRange(url, { start: 0 }, fh.fd, () => undefined, { timeoutMs: 5000 });
      assert.equal(r.end, body.length);
    }
    assert.equal(connections(), 3, 'each reuse was refused, and each retry made a new connection');
  } finally {
    await fh.close();
    await threads.close();
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('interim answers and the answer in one read, split inside the final head, or a byte at a time: the body starts where it should', async () => {
  const body = Buffer.from('fourteen bytes');
  const heads = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\n';
  const text = Buffer.concat([Buffer.from(`${heads}Content-Length: ${body.length}\r\n\r\n`), body]);
  let mode: 'whole' | 'split' | 'bytes' = 'whole';
  const server = createServer((socket: Socket) => {
    socket.on('error', () => undefined);
    socket.setNoDelay(true);
    socket.once('data', () => {
      if (mode === 'whole') return void socket.end(text);
      // (split: the interim answers and the final head's first line in one read, its rest and the body in the next)
      const pieces = mode === 'split' ? [text.subarray(0, heads.length), text.subarray(heads.length)] : [...text].map((b) => Buffer.of(b));
      let i = 0;
      const timer = setInterval(() => {
        if (socket.destroyed) return clearInterval(timer);
        if (i === pieces.length) return void (clearInterval(timer), socket.end());
        socket.write(pieces[i++]!);
      }, mode === 'split' ? 50 : 1);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/x`;
  const threads = new FetchThreads(1);
  const dir = await mkdtemp(path.join(tmpdir(), 'raw-http-'));
  try {
    for (const each of ['whole', 'split', 'bytes'] as const) {
      mode = each;
      const file = path.join(dir, `out-${each}`);
      const fh = await open(file, 'w+');
      try {
        const r = await threads.fetchRange(url, { start: 0 }, fh.fd, () => undefined, { timeoutMs: 5000 });
        assert.equal(r.end, body.length);
      } finally {
        await fh.close();
      }
      assert.deepEqual(await readFile(file), body, each);
    }
  } finally {
    await threads.close();
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

/** A server whose answers' heads come one byte every `everyMs`: never silent for long, never done. */
async function tricklingHeadServer(everyMs: number): Promise<{ server: Server; url: string; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket: Socket) => {
    sockets.add(socket);
    const text = 'HTTP/1.1 200 OK\r\n' + 'X-Slow: '.padEnd(60_000, 'a');
    let i = 0;
    const timer = setInterval(() => (socket.destroyed ? clearInterval(timer) : socket.write(text[i++ % text.length]!)), everyMs);
    socket.on('close', () => clearInterval(timer));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/x`, sockets };
}

test('an answer whose head does not end within the timeout fails as a timeout, however steadily its bytes come', async () => {
  const { server, url, sockets } = await tricklingHeadServer(50);
  const threads = new FetchThreads(1);
  const dir = await mkdtemp(path.join(tmpdir(), 'raw-http-'));
  const fh = await open(path.join(dir, 'out'), 'w+');
  try {
    const t0 = Date.now();
    const p = threads.fetchRange(url, { start: 0 }, fh.fd, () => undefined, { timeoutMs: 600 });
    const guard = new Promise((_, reject) => setTimeout(() => reject(new Error('still waiting after 10 s')), 10_000).unref());
    const e = await Promise.race([p, guard]).then(() => undefined, (err: unknown) => err);
    assert.ok(e instanceof FetchError, String(e));
    assert.deepEqual([e.kind, e.message], ['timeout', 'no response headers in time']);
    assert.ok(Date.now() - t0 < 5000);
  } finally {
    await fh.close();
    await threads.close();
    for (const s of sockets) s.destroy();
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a progress callback that throws fails its request (the process goes on)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'raw-http-'));
  const body = randomBytes(4 * 1024 * 1024);
  await writeFile(path.join(dir, 'f.bin'), body);
  const mirror = await startMirror({ root: dir });
  const threads = new FetchThreads(1);
  const fh = await open(path.join(dir, 'out'), 'w+');
  try {
    const p = threads.fetchRange(`${mirror.url}f.bin`, { start: 0 }, fh.fd, () => {
      throw new Error('callback failed');
    }, { timeoutMs: 5000 });
    await assert.rejects(p, /callback failed/);
    const again = await threads.fetchRange(`${mirror.url}f.bin`, { start: 0 }, fh.fd, () => undefined, { timeoutMs: 5000 });
    assert.equal(again.end, body.length);
  } finally {
    await fh.close();
    await threads.close();
    await mirror.close();
    await rm(dir, { recursive: true, force: true });
  }
});
