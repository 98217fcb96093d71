/**
 * Proves the test mirror behaves like a real HTTP mirror and that each fault switch does what the client
 * tests will rely on. Every request is real (loopback only); every test closes its server in `finally`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile, utimes } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startMirror, type Mirror, type MirrorOptions } from './mirror-server.js';

const HELPER = fileURLToPath(new URL('../helpers/mirror-server.ts', import.meta.url));

let tmp: string;
let root: string;
/** Deterministic, non-repeating-ish content so misplaced ranges are caught. */
const DATA = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7 + (i >> 8)) % 251));
/** Larger than socket buffers, so an aborting client really leaves the server mid-stream. */
const BIG_SIZE = 16 * 1024 * 1024;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'mirror-test-'));
  root = path.join(tmp, 'root');
  await mkdir(path.join(root, 'dir with space'), { recursive: true });
  await writeFile(path.join(root, 'data.bin'), DATA);
  await writeFile(path.join(root, 'big.bin'), Buffer.alloc(BIG_SIZE, 0x5a));
  await writeFile(path.join(root, 'empty.bin'), Buffer.alloc(0));
  await writeFile(path.join(root, 'dir with space', 'a b.txt'), 'spaced\n');
  await writeFile(path.join(tmp, 'secret.txt'), 'outside the root\n');
  await symlink(path.join(tmp, 'secret.txt'), path.join(root, 'link-out'));
  await symlink('data.bin', path.join(root, 'link-in'));
  await utimes(path.join(root, 'data.bin'), new Date('2024-01-02T03:04:05Z'), new Date('2024-01-02T03:04:05Z'));
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Run `fn` against a fresh mirror and always close it, even when an assertion fails. */
async function withMirror(fn: (m: Mirror) => Promise<void>, opts: Partial<MirrorOptions> = {}): Promise<void> {
  const mirror = await startMirror({ root, ...opts });
  try {
    await fn(mirror);
  } finally {
    await mirror.close();
  }
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Set when the response body did not arrive completely (premature close, reset). */
  error?: Error;
}

/**
 * node:http client that sends the path byte-for-byte: fetch() would normalise `..` and `%2e%2e` away
 * before the request ever left, hiding the traversal attempt.
 */
function rawRequest(
  port: number,
  rawPath: string,
  opts: { method?: string; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    // Before the headers arrive an error fails the request; after, it is recorded as a broken body.
    let onError: (err: Error) => void = reject;
    const req = http.request(
      { host: '127.0.0.1', port, path: rawPath, method: opts.method ?? 'GET', headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        let settled = false;
        const done = (error?: Error): void => {
          if (settled) return;
          settled = true;
          const out: RawResponse = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
          if (error) out.error = error;
          resolve(out);
        };
        onError = done;
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', done);
        res.on('end', () => (res.complete ? done() : done(new Error('incomplete body'))));
      },
    );
    req.on('error', (err) => onError(err));
    req.end();
  });
}

async function elapsed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

// --- plain serving ----------------------------------------------------------------------------------------------

test('full GET serves the file with validators and range support advertised', () =>
  withMirror(async (m) => {
    assert.equal(m.url, `http://127.0.0.1:${m.port}/`);
    const res = await fetch(new URL('data.bin', m.url));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('accept-ranges'), 'bytes');
    assert.equal(res.headers.get('content-length'), String(DATA.length));
    assert.equal(res.headers.get('last-modified'), 'Tue, 02 Jan 2024 03:04:05 GMT');
    assert.match(res.headers.get('etag') ?? '', /^"[0-9a-f]+-[0-9a-f]+"$/);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), DATA);
    assert.deepEqual(m.requests, [{ method: 'GET', path: '/data.bin', status: 200, bytes: DATA.length }]);
    assert.equal(m.bytesSent, DATA.length);
  }));

test('HEAD returns the headers of a GET and no body', () =>
  withMirror(async (m) => {
    const res = await fetch(new URL('data.bin', m.url), { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(DATA.length));
    assert.equal(res.headers.get('accept-ranges'), 'bytes');
    assert.equal((await res.arrayBuffer()).byteLength, 0);
    assert.equal(m.requests[0]?.bytes, 0);
    assert.equal(m.bytesSent, 0);
  }));

test('URL-decoded paths, symlinks inside the root, empty files', () =>
  withMirror(async (m) => {
    const spaced = await fetch(new URL('dir%20with%20space/a%20b.txt', m.url));
    assert.equal(spaced.status, 200);
    assert.equal(await spaced.text(), 'spaced\n');
    assert.equal(m.requests[0]?.path, '/dir with space/a b.txt');
    const linked = await fetch(new URL('link-in', m.url));
    assert.deepEqual(Buffer.from(await linked.arrayBuffer()), DATA);
    const empty = await fetch(new URL('empty.bin', m.url));
    assert.equal(empty.status, 200);
    assert.equal((await empty.arrayBuffer()).byteLength, 0);
  }));

test('files whose names are not UTF-8 are served by their bytes (%E9 is the byte 0xE9)', () =>
  withMirror(async (m) => {
    const name = Buffer.from('caf\xe9 M\x81ller.bin', 'latin1');
    await writeFile(Buffer.concat([Buffer.from(`${root}/`), name]), 'latin-1 name\n');
    try {
      const r = await rawRequest(m.port, '/caf%E9%20M%81ller.bin');
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'latin-1 name\n');
      assert.equal((await rawRequest(m.port, '/caf%C3%A9%20M%C3%BCller.bin')).status, 404); // the UTF-8 name is another file
    } finally {
      await rm(Buffer.concat([Buffer.from(`${root}/`), name]));
    }
  }));

test('each Range form gives 206 with the right bytes and Content-Range', () =>
  withMirror(async (m) => {
    const size = DATA.length;
    const cases: Array<[string, number, number]> = [
      ['bytes=0-0', 0, 0],
      ['bytes=100-1099', 100, 1099],
      ['bytes=99000-', 99000, size - 1],
      ['bytes=-500', size - 500, size - 1],
      ['bytes=-999999', 0, size - 1], // suffix longer than the file: the whole file, still 206
      ['bytes=99990-200000', 99990, size - 1], // end past EOF is clamped
    ];
    for (const [range, start, end] of cases) {
      const res = await fetch(new URL('data.bin', m.url), { headers: { Range: range } });
      assert.equal(res.status, 206, range);
      assert.equal(res.headers.get('content-range'), `bytes ${start}-${end}/${size}`, range);
      assert.equal(res.headers.get('content-length'), String(end - start + 1), range);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), DATA.subarray(start, end + 1), range);
    }
    assert.equal(m.requests[1]?.range, 'bytes=100-1099');
    assert.equal(m.requests[1]?.bytes, 1000);
  }));

test('multi-range, invalid ranges and a stale If-Range get the full 200', () =>
  withMirror(async (m) => {
    for (const range of ['bytes=0-1,5-9', 'bytes=9-3', 'items=0-5', 'bytes=abc']) {
      const res = await fetch(new URL('data.bin', m.url), { headers: { Range: range } });
      assert.equal(res.status, 200, range);
      assert.equal((await res.arrayBuffer()).byteLength, DATA.length, range);
    }
    const head = await fetch(new URL('data.bin', m.url), { method: 'HEAD' });
    const etag = head.headers.get('etag') ?? '';
    const fresh = await fetch(new URL('data.bin', m.url), { headers: { Range: 'bytes=0-9', 'If-Range': etag } });
    assert.equal(fresh.status, 206);
    await fresh.arrayBuffer();
    const stale = await fetch(new URL('data.bin', m.url), { headers: { Range: 'bytes=0-9', 'If-Range': '"x"' } });
    assert.equal(stale.status, 200);
    await stale.arrayBuffer();
  }));

test('unsatisfiable ranges give 416 with Content-Range bytes */size', () =>
  withMirror(async (m) => {
    for (const [file, range, size] of [
      ['data.bin', `bytes=${DATA.length}-`, DATA.length],
      ['data.bin', 'bytes=200000-300000', DATA.length],
      ['data.bin', 'bytes=-0', DATA.length],
      ['empty.bin', 'bytes=0-', 0],
    ] as const) {
      const res = await fetch(new URL(file, m.url), { headers: { Range: range } });
      assert.equal(res.status, 416, range);
      assert.equal(res.headers.get('content-range'), `bytes */${size}`, range);
      await res.arrayBuffer();
    }
  }));

test('paths never escape the root: 403 for traversal, 404 for missing, 400 for garbage', () =>
  withMirror(async (m) => {
    const expect: Array<[string, number]> = [
      ['/../etc/passwd', 403],
      ['/../secret.txt', 403],
      ['/%2e%2e/secret.txt', 403],
      ['/%2E%2E/%2e%2e/etc/passwd', 403],
      ['/dir%20with%20space/..%2f..%2fsecret.txt', 403],
      ['/link-out', 403], // symlink pointing outside the root
      ['/dir%20with%20space/../data.bin', 200], // stays inside: allowed
      ['/nope.bin', 404],
      ['/dir%20with%20space', 404], // directories are not served
      ['/', 404],
      ['/%zz', 400],
      ['/a%00b', 400],
    ];
    for (const [p, status] of expect) {
      const res = await rawRequest(m.port, p);
      assert.equal(res.status, status, p);
      assert.ok(!res.body.includes('outside the root'), p);
      assert.ok(!res.body.includes('root:'), p);
    }
  }));

test('methods other than GET and HEAD get 405', () =>
  withMirror(async (m) => {
    const res = await rawRequest(m.port, '/data.bin', { method: 'POST' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, 'GET, HEAD');
  }));

// --- faults -------------------------------------------------------------------------------------------------------

test('status fault answers its code (with headers) for GET and HEAD, existing file or not', () =>
  withMirror(async (m) => {
    m.fault('/data.bin', { kind: 'status', code: 503, headers: { 'Retry-After': '1' } });
    m.fault('/missing.bin', { kind: 'status', code: 500 });
    const get = await fetch(new URL('data.bin', m.url));
    assert.equal(get.status, 503);
    assert.equal(get.headers.get('retry-after'), '1');
    await get.arrayBuffer();
    const head = await fetch(new URL('data.bin', m.url), { method: 'HEAD' });
    assert.equal(head.status, 503);
    const missing = await fetch(new URL('missing.bin', m.url));
    assert.equal(missing.status, 500);
    await missing.arrayBuffer();
    assert.equal(m.requests[0]?.fault, 'status');
    assert.equal(m.requests[0]?.status, 503);
  }));

test('reset fault: the client gets afterBytes bytes, then a connection error', () =>
  withMirror(async (m) => {
    m.fault('/data.bin', { kind: 'reset', afterBytes: 1000 });
    const res = await fetch(new URL('data.bin', m.url));
    assert.equal(res.status, 200);
    await assert.rejects(res.arrayBuffer(), TypeError); // undici: "terminated"
    const raw = await rawRequest(m.port, '/data.bin');
    assert.ok(raw.error, 'raw client must see the body fail');
    assert.deepEqual(raw.body, DATA.subarray(0, 1000));
    // afterBytes 0 still delivers the headers, so the client learns the status before the reset.
    m.fault('/data.bin', { kind: 'reset', afterBytes: 0 });
    const zero = await rawRequest(m.port, '/data.bin', { headers: { Range: 'bytes=10-' } });
    assert.equal(zero.status, 206);
    assert.ok(zero.error);
    assert.equal(zero.body.length, 0);
    assert.equal(m.requests.at(-1)?.bytes, 0);
  }));

test('trickle fault: bytes at full speed, then one byte per interval, every byte right', () =>
  withMirror(async (m) => {
    m.fault('/data.bin', { kind: 'trickle', afterBytes: 995, everyMs: 60 });
    const t0 = performance.now();
    const res = await fetch(new URL('data.bin', m.url), { headers: { range: `bytes=${DATA.length - 1000}-` } });
    assert.equal(res.status, 206);
    const reader = res.body!.getReader();
    const parts: Uint8Array[] = [];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
    }
    const body = Buffer.concat(parts);
    assert.ok(body.equals(DATA.subarray(DATA.length - 1000)), 'the body is the range, exact');
    // Offsets count from the body's start: 995 bytes at once, then 5 single bytes 60 ms apart.
    const ms = performance.now() - t0;
    assert.ok(ms >= 5 * 60 - 20, `five trickled bytes took ${ms.toFixed(0)} ms`);
    assert.equal(m.requests[0]!.bytes, 1000);
  }));

test('stall fault: bytes then silence; the client times out and close() does not hang', () =>
  withMirror(async (m) => {
    m.fault('/data.bin', { kind: 'stall', afterBytes: 500 });
    const res = await fetch(new URL('data.bin', m.url), { signal: AbortSignal.timeout(300) });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let got = 0;
    await assert.rejects(
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          got += value.length;
        }
      })(),
      { name: 'TimeoutError' },
    );
    assert.equal(got, 500);
    // A second stalled request that nobody aborts: close() must still return promptly.
    const pending = rawRequest(m.port, '/data.bin');
    await new Promise((r) => setTimeout(r, 50));
    const t = await elapsed(() => m.close());
    assert.ok(t < 1000, `close took ${t} ms`);
    const late = await pending;
    assert.ok(late.error, 'stalled client must see the connection die on close()');
    assert.equal(late.body.length, 500);
  }));

test('corrupt fault: same length, only the chosen bytes differ', () =>
  withMirror(async (m) => {
    m.fault('/data.bin', { kind: 'corrupt', at: 1234, length: 3 });
    const res = await fetch(new URL('data.bin', m.url));
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(body.length, DATA.length);
    const diffs = [...body.keys()].filter((i) => body[i] !== DATA[i]);
    assert.deepEqual(diffs, [1234, 1235, 1236]);
    assert.equal(body[1234], DATA[1234]! ^ 0xff);
    // Default position: the middle of the body, counted within a ranged response.
    m.fault('/data.bin', { kind: 'corrupt' });
    const part = await fetch(new URL('data.bin', m.url), { headers: { Range: 'bytes=1000-1999' } });
    const pbody = Buffer.from(await part.arrayBuffer());
    const expected = DATA.subarray(1000, 2000);
    assert.equal(pbody.length, 1000);
    assert.deepEqual([...pbody.keys()].filter((i) => pbody[i] !== expected[i]), [500]);
  }));

test('short fault: full Content-Length, fewer bytes, then a clean close the client sees as premature', () =>
  withMirror(async (m) => {
    m.fault('/data.bin', { kind: 'short', bytes: 4096 });
    const res = await fetch(new URL('data.bin', m.url));
    assert.equal(res.headers.get('content-length'), String(DATA.length));
    await assert.rejects(res.arrayBuffer(), TypeError);
    const raw = await rawRequest(m.port, '/data.bin');
    assert.ok(raw.error, 'premature close must be reported');
    assert.deepEqual(raw.body, DATA.subarray(0, 4096));
    // The server is fine afterwards.
    m.fault('/data.bin', null);
    const ok = await fetch(new URL('data.bin', m.url));
    assert.equal((await ok.arrayBuffer()).byteLength, DATA.length);
  }));

test('truncate fault: a well-formed response whose Content-Length is short', () =>
  withMirror(async (m) => {
    m.fault('/data.bin', { kind: 'truncate', bytes: 10 });
    const res = await fetch(new URL('data.bin', m.url));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), '10');
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), DATA.subarray(0, 10));
  }));

test('delay fault and latencyMs hold back the headers', () =>
  withMirror(
    async (m) => {
      const base = await elapsed(async () => (await fetch(new URL('data.bin', m.url))).arrayBuffer());
      assert.ok(base >= 75, `latency: ${base} ms`);
      m.fault('/data.bin', { kind: 'delay', ms: 150 });
      const slow = await elapsed(async () => (await fetch(new URL('data.bin', m.url))).arrayBuffer());
      assert.ok(slow >= 75 + 145, `latency + delay: ${slow} ms`);
      m.latencyMs = 0;
      m.fault('/data.bin', null);
      const fast = await elapsed(async () => (await fetch(new URL('data.bin', m.url))).arrayBuffer());
      assert.ok(fast < 75, `no latency: ${fast} ms`);
    },
    { latencyMs: 80 },
  ));

test('times: a fault applies to the next N matching requests, then clears itself', () =>
  withMirror(async (m) => {
    m.fault('/data.bin', { kind: 'status', code: 500, times: 2 });
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(new URL('data.bin', m.url));
      codes.push(res.status);
      await res.arrayBuffer();
    }
    assert.deepEqual(codes, [500, 500, 200]);
    // Body faults are not used up by a HEAD or by a 404: only a body-bearing GET consumes them.
    m.fault('*', { kind: 'reset', afterBytes: 10, times: 1 });
    assert.equal((await fetch(new URL('data.bin', m.url), { method: 'HEAD' })).status, 200);
    const missing = await fetch(new URL('nope', m.url));
    assert.equal(missing.status, 404);
    await missing.arrayBuffer();
    await assert.rejects((await fetch(new URL('data.bin', m.url))).arrayBuffer());
    const after = await fetch(new URL('data.bin', m.url));
    assert.equal((await after.arrayBuffer()).byteLength, DATA.length);
  }));

test('matching: exact path beats RegExp/predicate beats global; null and clearFaults remove', () =>
  withMirror(async (m) => {
    const status = async (p: string): Promise<number> => {
      const res = await fetch(new URL(p, m.url));
      await res.arrayBuffer();
      return res.status;
    };
    m.fault('*', { kind: 'status', code: 500 });
    m.fault(/\.txt$/, { kind: 'status', code: 502 });
    m.fault((p) => p.startsWith('/link'), { kind: 'status', code: 504 });
    m.fault('/data.bin', { kind: 'status', code: 503 });
    m.fault('/dir%20with%20space/a%20b.txt', { kind: 'status', code: 418 }); // raw form matches too
    assert.equal(await status('data.bin'), 503);
    assert.equal(await status('empty.bin'), 500);
    assert.equal(await status('link-in'), 504);
    assert.equal(await status('dir%20with%20space/a%20b.txt'), 418);
    m.fault('/dir%20with%20space/a%20b.txt', null);
    assert.equal(await status('dir%20with%20space/a%20b.txt'), 502);
    m.fault(/\.txt$/, null); // an equal RegExp (same source and flags) identifies the rule
    assert.equal(await status('dir%20with%20space/a%20b.txt'), 500);
    m.clearFaults();
    assert.equal(await status('data.bin'), 200);
    assert.throws(() => m.fault('*', { kind: 'reset', afterBytes: -1 }), RangeError);
    assert.throws(() => m.fault('*', { kind: 'status', code: 500, times: 0 }), RangeError);
  }));

test('a client aborting mid-body does not disturb the server', () =>
  withMirror(async (m) => {
    const ctrl = new AbortController();
    const res = await fetch(new URL('big.bin', m.url), { signal: ctrl.signal });
    const reader = res.body!.getReader();
    await reader.read();
    ctrl.abort();
    await assert.rejects(reader.read());
    // Wait until the server has noticed, then check it stopped early and still serves.
    const closed = m.requests[0]!;
    for (let i = 0; i < 100 && closed.bytes === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const again = await fetch(new URL('data.bin', m.url));
    assert.equal((await again.arrayBuffer()).byteLength, DATA.length);
    assert.ok(closed.bytes < BIG_SIZE, `server kept streaming: ${closed.bytes}`);
  }));

test('request log, counters, onResponse and reset()', async () => {
  const finished: string[] = [];
  await withMirror(
    async (m) => {
      await (await fetch(new URL('data.bin', m.url), { headers: { Range: 'bytes=0-99' } })).arrayBuffer();
      await (await fetch(new URL('nope', m.url))).arrayBuffer();
      assert.equal(m.requests.length, 2);
      assert.deepEqual(m.requests[0], { method: 'GET', path: '/data.bin', range: 'bytes=0-99', status: 206, bytes: 100 });
      assert.equal(m.requests[1]?.status, 404);
      assert.equal(m.bytesSent, 100 + m.requests[1]!.bytes);
      await new Promise((r) => setTimeout(r, 20)); // 'close' on the server side may trail the client's end
      assert.deepEqual(finished, ['/data.bin 206', '/nope 404']);
      m.reset();
      assert.equal(m.requests.length, 0);
      assert.equal(m.bytesSent, 0);
    },
    { onResponse: (r) => finished.push(`${r.path} ${r.status}`) },
  );
});

test('close() is idempotent and stops listening', async () => {
  const m = await startMirror({ root });
  const port = m.port;
  await Promise.all([m.close(), m.close()]);
  await m.close();
  await assert.rejects(rawRequest(port, '/data.bin'), { code: 'ECONNREFUSED' });
});

test('standalone: prints its URL first, serves with latency, exits on SIGTERM', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', HELPER, '--root', root, '--latency', '20'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const lines = createInterface({ input: child.stdout! });
    const first = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
    });
    assert.match(first, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const res = await fetch(new URL('data.bin', first), { headers: { Range: 'bytes=-10' } });
    assert.equal(res.status, 206);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), DATA.subarray(-10));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
