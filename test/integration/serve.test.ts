/**
 * `jigdofs serve` (issue 12) with real clients on 127.0.0.1: curl for every response type (full, HEAD,
 * ranges, multipart/byteranges, 416, 304, If-Range), qemu-img's curl block driver, `wget -c`; a part no
 * source has cuts only the responses that need it; `status` of a server; SIGTERM drains.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { buildFixtures, type FixtureSet, type FixtureVariant } from '../helpers/fixtures.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { gets, jigdoWithServers, md5hex, partsUri, waitFor } from '../helpers/network.js';
import { execFileP, httpGet, parseMultipart, startServe, type TestServer } from '../helpers/serve.js';

let fx: FixtureSet;
let v: FixtureVariant;
let image: Buffer;
let work: string;
let mirror: Mirror;
let server: TestServer;
let url: string;
const servers: TestServer[] = [];

before(async () => {
  fx = await buildFixtures();
  v = fx.variants['jf-md5-gzip'];
  image = await readFile(v.image);
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-serve-test-'));
  mirror = await startMirror({ root: fx.tree });
  const jigdo = await jigdoWithServers(v, [partsUri(mirror)], path.join(work, 'j'));
  server = await startServe([jigdo, '--cache-dir', path.join(work, 'cache')]);
  servers.push(server);
  url = `${server.url}image.iso`;
});

after(async () => {
  for (const s of servers) await s.stop('SIGKILL');
  await mirror?.close();
  await rm(work, { recursive: true, force: true });
});

/** curl URL with extra args; the body to a file, the headers parsed. */
async function curl(args: string[]): Promise<{ code: number; headers: Map<string, string>; body: Buffer; rc: number }> {
  const out = path.join(work, `body-${Math.random().toString(36).slice(2)}`);
  const hdr = `${out}.h`;
  let rc = 0;
  let code = 0;
  try {
    const r = await execFileP('curl', ['-sS', '-o', out, '-D', hdr, '-w', '%{http_code}', ...args]);
    code = Number(r.stdout);
  } catch (err) {
    const e = err as { code: number; stdout: string };
    rc = e.code;
    code = Number(e.stdout);
  }
  const text = await readFile(hdr, 'latin1').catch(() => '');
  const headers = new Map<string, string>();
  for (const line of text.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
  }
  const body = await readFile(out).catch(() => Buffer.alloc(0));
  await rm(out, { force: true });
  await rm(hdr, { force: true });
  return { code, headers, body, rc };
}

/**
 * Sends `text` on a new connection to the server at `port` and returns all it answered until it closed. `halfClose`:
 * the client ends its side once sent (`nc -N`); else it only writes, and waits for the server to close.
 */
function rawExchange(port: number, text: string, halfClose = true): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = connect({ host: '127.0.0.1', port });
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', reject);
    sock.on('close', () => resolve(Buffer.concat(chunks)));
    if (halfClose) sock.end(text);
    else sock.write(text);
  });
}

describe('jigdofs serve', () => {
  test('full GET and HEAD: the exact image, with Accept-Ranges, ETag from the image checksum, Last-Modified, ISO type', async () => {
    const full = await curl([url]);
    assert.equal(full.code, 200);
    assert.equal(md5hex(full.body), v.imageMd5);
    assert.equal(full.headers.get('content-length'), String(image.length));
    assert.equal(full.headers.get('accept-ranges'), 'bytes');
    assert.equal(full.headers.get('etag'), `"md5-${v.imageMd5}"`);
    assert.equal(full.headers.get('content-type'), 'application/x-iso9660-image');
    assert.ok(!Number.isNaN(Date.parse(full.headers.get('last-modified') ?? '')), 'Last-Modified is a date');
    const head = await httpGet(url, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers['content-length'], String(image.length));
    assert.equal(head.headers.etag, full.headers.get('etag'));
    assert.equal(head.headers['accept-ranges'], 'bytes');
  });

  test('single ranges (first-last, open, suffix, past the end clipped) are 206 with exact bytes and Content-Range', async () => {
    const n = image.length;
    const cases: Array<[string, number, number]> = [
      ['0-0', 0, 0],
      ['1000-2000', 1000, 2000],
      ['2015000-5100000', 2015000, 5100000], // across the 3 MB part and raw data
      [`${n - 5000}-`, n - 5000, n - 1],
      ['-4096', n - 4096, n - 1],
      [`${n - 10}-${n + 1000}`, n - 10, n - 1],
    ];
    for (const [spec, start, end] of cases) {
      const r = await curl(['-r', spec, url]);
      assert.equal(r.code, 206, spec);
      assert.equal(r.headers.get('content-range'), `bytes ${start}-${end}/${n}`, spec);
      assert.ok(r.body.equals(image.subarray(start, end + 1)), `bytes of ${spec}`);
    }
  });

  test('several ranges: multipart/byteranges, each part exact, Content-Length exact', async () => {
    const n = image.length;
    const specs: Array<[number, number]> = [[0, 99], [3_000_000, 3_100_000], [n - 100, n - 1], [50, 60]];
    const r = await curl(['-r', specs.map(([a, b]) => `${a}-${b}`).join(','), url]);
    assert.equal(r.code, 206);
    const type = r.headers.get('content-type') ?? '';
    assert.match(type, /^multipart\/byteranges; boundary=/);
    assert.equal(Number(r.headers.get('content-length')), r.body.length);
    const parts = parseMultipart(r.body, type);
    assert.equal(parts.length, specs.length);
    specs.forEach(([a, b], i) => {
      assert.equal(parts[i]!.range, `${a}-${b}`);
      assert.equal(parts[i]!.type, 'application/x-iso9660-image');
      assert.ok(parts[i]!.data.equals(image.subarray(a, b + 1)), `part ${a}-${b}`);
    });
  });

  test('unsatisfiable ranges: 416 with Content-Range bytes */size; a bad Range header is ignored (200)', async () => {
    const n = image.length;
    const r = await curl(['-r', `${n}-${n + 10}`, url]);
    assert.equal(r.code, 416);
    assert.equal(r.headers.get('content-range'), `bytes */${n}`);
    // Its length stated, 0, as for HEAD (found by a probe: the empty GET answer came chunked).
    for (const method of ['GET', 'HEAD']) {
      const empty = await httpGet(url, { Range: `bytes=${n}-` }, method);
      assert.equal(empty.status, 416);
      assert.equal(empty.headers['content-length'], '0', method);
      assert.equal(empty.headers['transfer-encoding'], undefined, method);
    }
    const bad = await curl(['-H', 'Range: bytes=oops', url]);
    assert.equal(bad.code, 200);
    assert.equal(md5hex(bad.body), v.imageMd5);
  });

  test('If-None-Match and If-Modified-Since give 304; If-Range with our ETag/date ranges, with another gives the whole image', async () => {
    const etag = `"md5-${v.imageMd5}"`;
    const head = await curl(['-I', url]);
    const lastModified = head.headers.get('last-modified')!;
    assert.equal((await curl(['-H', `If-None-Match: ${etag}`, url])).code, 304);
    assert.equal((await curl(['-H', `If-None-Match: "other", W/${etag}`, url])).code, 304);
    assert.equal((await curl(['-H', `If-Modified-Since: ${lastModified}`, url])).code, 304);
    // A date from the future is none we sent (a clock ahead): the image, not 304, as Apache answers.
    const future = await curl(['-H', `If-Modified-Since: ${new Date(Date.now() + 86_400_000).toUTCString()}`, url]);
    assert.equal(future.code, 200);
    assert.equal(md5hex(future.body), v.imageMd5);
    const changed = await curl(['-H', 'If-None-Match: "md5-00"', url]);
    assert.equal(changed.code, 200);
    assert.equal(md5hex(changed.body), v.imageMd5);
    const same = await curl(['-r', '100-199', '-H', `If-Range: ${etag}`, url]);
    assert.equal(same.code, 206);
    assert.ok(same.body.equals(image.subarray(100, 200)));
    const byDate = await curl(['-r', '100-199', '-H', `If-Range: ${lastModified}`, url]);
    assert.equal(byDate.code, 206);
    const other = await curl(['-r', '100-199', '-H', 'If-Range: "md5-00000000000000000000000000000000"', url]);
    assert.equal(other.code, 200);
    assert.equal(md5hex(other.body), v.imageMd5);
    assert.equal((await curl(['-H', 'If-Match: "nope"', url])).code, 412);
    // If-Unmodified-Since (curl -z -DATE, as a resuming download manager sends it): before our date 412, as nginx answers.
    assert.equal((await curl(['-r', '0-9', '-H', 'If-Unmodified-Since: Thu, 01 Jan 1970 00:00:01 GMT', url])).code, 412);
    const unmodified = await curl(['-r', '0-9', '-H', `If-Unmodified-Since: ${lastModified}`, url]);
    assert.equal(unmodified.code, 206);
    assert.equal((await curl(['-H', `If-Match: ${etag}`, '-H', 'If-Unmodified-Since: Thu, 01 Jan 1970 00:00:01 GMT', url])).code, 200, 'If-Match decides when given');
  });

  test('/ lists the images: JSON on Accept: application/json, HTML otherwise; unknown names 404, POST 405', async () => {
    const json = await curl(['-H', 'Accept: application/json', server.url]);
    assert.equal(json.code, 200);
    const list = JSON.parse(json.body.toString()) as { images: Array<{ name: string; url: string; size: number; etag: string }> };
    assert.deepEqual(list.images.map((i) => [i.name, i.url, i.size, i.etag]), [['image.iso', '/image.iso', image.length, `"md5-${v.imageMd5}"`]]);
    const html = await curl([server.url]);
    assert.match(html.headers.get('content-type') ?? '', /text\/html/);
    assert.match(html.body.toString(), /<a href="\/image\.iso">image\.iso<\/a>/);
    assert.equal((await curl([`${server.url}nope.iso`])).code, 404);
    assert.equal((await curl(['-X', 'POST', url])).code, 405);
  });

  test('two .jigdo files of one image name: the second is served as image-2.iso, an ISO still (Content-Type), its own bytes', async () => {
    const w = fx.variants['jf-sha256-bzip2'];
    const jigdos = [await jigdoWithServers(v, [partsUri(mirror)], path.join(work, 'two-a')), await jigdoWithServers(w, [partsUri(mirror)], path.join(work, 'two-b'))];
    const two = await startServe([...jigdos, '--cache-dir', path.join(work, 'two-cache')]);
    servers.push(two);
    const list = JSON.parse((await curl(['-H', 'Accept: application/json', two.url])).body.toString()) as { images: Array<{ name: string; etag: string }> };
    // (The code before: image.iso.2, served as application/octet-stream.)
    assert.deepEqual(list.images.map((i) => [i.name, i.etag.slice(1, 7)]), [['image.iso', 'md5-'.concat(v.imageMd5.slice(0, 2))], ['image-2.iso', 'sha256']]);
    const second = await curl([`${two.url}image-2.iso`]);
    assert.equal(second.code, 200);
    assert.equal(second.headers.get('content-type'), 'application/x-iso9660-image');
    assert.equal(md5hex(second.body), v.imageMd5, 'the same image, described the second way');
    await two.stop('SIGTERM');
  });

  test('a request target in absolute form (as a proxy sends it: RFC 9112 §3.2.2) is served as its path', async () => {
    const r = await curl(['-r', '0-99', '-x', server.url, 'http://jigdo.example/image.iso']); // curl -x sends `GET http://…`
    assert.equal(r.code, 206);
    assert.ok(r.body.equals(image.subarray(0, 100)));
    assert.equal((await curl(['-x', server.url, 'http://jigdo.example/nope.iso'])).code, 404);
  });

  test('two Host lines: 400 (RFC 9112 §3.2), the image not served; CONNECT: 405', async () => {
    // Found by a probe: Node passes both, and the image was served (206) whichever host was meant.
    const { port } = new URL(server.url);
    const answer = (await rawExchange(Number(port), 'GET /image.iso HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n')).toString('latin1');
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.match(answer, /more than one Host header/);
    // CONNECT: 405 with Allow, as other methods (found by the same probe: the connection was closed without an answer).
    const connectAnswer = (await rawExchange(Number(port), 'CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n', false)).toString('latin1');
    assert.match(connectAnswer, /^HTTP\/1\.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n/);
    assert.ok((await httpGet(`${server.url}image.iso`, { Range: 'bytes=0-9' })).status === 206, 'still serving');
  });

  test('a method Node does not know: 501 (RFC 9110 §15.6.2); other requests its parser refuses get its own answers', async () => {
    // Found by a probe: Node's parser refused `FOO` before our handler saw it, and answered a bare 400.
    const { port } = new URL(server.url);
    const before = (await server.status()).server.byStatus['501'] ?? 0;
    for (const method of ['FOO', 'get']) {
      const answer = (await rawExchange(Number(port), `${method} /image.iso HTTP/1.1\r\nHost: x\r\n\r\n`)).toString('latin1');
      assert.match(answer, /^HTTP\/1\.1 501 Not Implemented\r\n/, method);
      assert.match(answer, /\r\nContent-Length: 0\r\n/i);
    }
    assert.equal((await server.status()).server.byStatus['501'], before + 2, 'counted as answers');
    const huge = (await rawExchange(Number(port), `GET /image.iso HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)).toString('latin1');
    assert.match(huge, /^HTTP\/1\.1 431 /, 'headers past Node\'s limit: 431, as before');
    const garbage = (await rawExchange(Number(port), 'GET /image.iso HTTP/9.9 what\r\n\r\n')).toString('latin1');
    assert.match(garbage, /^HTTP\/1\.1 400 Bad Request\r\n/);
    // A pipelined request after a good one that Node refuses: the good one's answer, and nothing after it.
    const pipelined = (await rawExchange(Number(port), 'HEAD /image.iso HTTP/1.1\r\nHost: x\r\n\r\nFOO / HTTP/1.1\r\n\r\n')).toString('latin1');
    assert.match(pipelined, /^HTTP\/1\.1 200 OK\r\n/);
    assert.doesNotMatch(pipelined, /501/);
    assert.ok((await httpGet(`${server.url}image.iso`, { Range: 'bytes=0-9' })).status === 206, 'still serving');
  });

  test('a client that half-closes once its requests are sent (nc -N, a script) gets every answer whole', async () => {
    // A fresh server: its first reads fetch parts, so the bodies are still being read when the client's end arrives.
    const fresh = await startServe([path.join(work, 'j', path.basename(v.jigdo)), '--cache-dir', path.join(work, 'half-close-cache')]);
    servers.push(fresh);
    const ask = (method: string, range?: string): string => `${method} /image.iso HTTP/1.1\r\nHost: x\r\n${range ? `Range: bytes=${range}\r\n` : ''}\r\n`;
    const answer = await rawExchange(fresh.port, ask('HEAD') + ask('GET', '1000-400000') + ask('GET'));
    const heads: string[] = [];
    let at = 0;
    const bodies: Buffer[] = [];
    while (at < answer.length) {
      const end = answer.indexOf('\r\n\r\n', at);
      assert.ok(end > 0, `an answer's headers at ${at} of ${answer.length}`);
      const head = answer.subarray(at, end).toString('latin1');
      heads.push(head.split('\r\n')[0]!);
      const length = heads.length === 1 ? 0 : Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1]);
      bodies.push(answer.subarray(end + 4, end + 4 + length));
      at = end + 4 + length;
    }
    assert.deepEqual(heads, ['HTTP/1.1 200 OK', 'HTTP/1.1 206 Partial Content', 'HTTP/1.1 200 OK']);
    assert.ok(bodies[1]!.equals(image.subarray(1000, 400001)), `206 body: ${bodies[1]!.length} bytes`);
    assert.ok(bodies[2]!.equals(image), `200 body: ${bodies[2]!.length} bytes`);
  });

  test('qemu-img convert -f raw http://…/image.iso gives the exact image (QEMU curl block driver)', async () => {
    const out = path.join(work, 'qemu.raw');
    // -m 1: Debian 12's qemu-img 7.2 hangs at the end of a parallel convert over http from any server (nginx too).
    await execFileP('qemu-img', ['convert', '-m', '1', '-f', 'raw', '-O', 'raw', url, out], { timeout: 60_000 });
    assert.equal(md5hex(await readFile(out)), v.imageMd5);
    const info = await execFileP('qemu-img', ['info', '--output=json', '-f', 'raw', url], { timeout: 30_000 });
    assert.equal((JSON.parse(info.stdout) as { 'virtual-size': number })['virtual-size'], image.length);
  });

  test('wget -c resumes a partial download to the exact image', async () => {
    const dir = path.join(work, 'wget');
    await execFileP('mkdir', ['-p', dir]);
    const file = path.join(dir, 'image.iso');
    await writeFile(file, image.subarray(0, 3_333_333));
    const r = await execFileP('wget', ['-c', '-nv', '-O', file, url], { timeout: 60_000 });
    assert.equal(md5hex(await readFile(file)), v.imageMd5, r.stderr);
    const done = await execFileP('wget', ['-c', '-nv', '-O', file, url]).then((x) => x.stderr, (e: { stderr: string }) => e.stderr);
    assert.equal(md5hex(await readFile(file)), v.imageMd5, done);
  });

  test('status works for a server: images, parts and the HTTP counters', async () => {
    const s = await server.status();
    assert.ok(s.server.requests >= 10, JSON.stringify(s.server));
    assert.ok(s.server.bytesSent >= image.length);
    assert.ok((s.server.byStatus['206'] ?? 0) >= 5);
    assert.equal(s.images[0]!.name, 'image.iso');
    const text = await runCli(['status', server.url]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /jigdofs server pid \d+/);
    assert.match(text.stdout, /http: \d+ requests \(.*206 \d+.*\), 0 of 64 clients active/);
    assert.equal((await runCli(['status', `127.0.0.1:${server.port + 1}`])).code, 1, 'no server there');
    // The host spelled otherwise than the server listens (it said "no daemon").
    for (const name of [`localhost:${server.port}`, `http://LOCALHOST:${server.port}/`]) {
      const other = await runCli(['status', name]);
      assert.equal(other.code, 0, other.stderr);
      assert.match(other.stdout, /jigdofs server pid \d+/);
    }
  });

  test('status finds a server listening on every interface (0.0.0.0) by the address a user reaches it at', async () => {
    const jigdo = await jigdoWithServers(v, [partsUri(mirror)], path.join(work, 'any'));
    const s = await startServe([jigdo, '--cache-dir', path.join(work, 'cache-any'), '--host', '0.0.0.0']);
    try {
      for (const name of [`127.0.0.1:${s.port}`, `localhost:${s.port}`, `0.0.0.0:${s.port}`]) {
        const r = await runCli(['status', name, '--json']);
        assert.equal(r.code, 0, `${name}: ${r.stderr}`);
        assert.equal((JSON.parse(r.stdout) as { pid: number }).pid, s.proc.pid);
      }
      // Another machine's address (TEST-NET-1) is not this server, whatever it listens on.
      const remote = await runCli(['status', `192.0.2.1:${s.port}`]);
      assert.equal(remote.code, 1, remote.stdout);
    } finally {
      await s.stop();
    }
  });
});

describe('jigdofs serve: a part no source has', () => {
  test('cuts only the responses that need it (never a wrong or zero byte), is logged once; other ranges and clients go on', async () => {
    const m = await startMirror({ root: fx.tree });
    try {
      m.fault('/parts/pool/e-3m.bin', { kind: 'status', code: 404 });
      const jigdo = await jigdoWithServers(v, [partsUri(m)], path.join(work, 'missing'));
      await writeFile(path.join(work, 'missing', 'config.ini'), '[network]\nretries = 0\ntimeout = 5\n');
      const s = await startServe([jigdo, '--cache-dir', path.join(work, 'cache-missing'), '--config', path.join(work, 'missing', 'config.ini')]);
      servers.push(s);
      const u = `${s.url}image.iso`;
      const e = fx.files.find((f) => f.path === 'parts/pool/e-3m.bin')!;
      const key = Buffer.from(e.md5, 'hex').toString('base64url');
      // The whole image, twice at once, and a range inside the missing part: cut, with only right bytes before the cut.
      const [a, b, inside] = await Promise.all([httpGet(u), httpGet(u), httpGet(u, { Range: 'bytes=3000000-3000999' })]);
      for (const r of [a, b]) {
        assert.equal(r.status, 200);
        assert.ok(r.cut, 'the response is cut');
        assert.ok(r.body.length < image.length && r.body.length <= 2_015_232, `${r.body.length} bytes before the cut`);
        assert.ok(r.body.equals(image.subarray(0, r.body.length)), 'every byte before the cut is right');
      }
      assert.equal(inside.status, 206, 'the status line goes out before the body');
      assert.ok(inside.cut && inside.body.length === 0, 'a range inside the missing part gets no byte');
      // Meanwhile other ranges and clients are served.
      const [head, tail] = await Promise.all([httpGet(u, { Range: 'bytes=0-1999999' }), httpGet(u, { Range: `bytes=${image.length - 2_000_000}-` })]);
      assert.ok(!head.cut && head.body.equals(image.subarray(0, 2_000_000)));
      assert.ok(!tail.cut && tail.body.equals(image.subarray(image.length - 2_000_000)));
      const c = await curl([u, '-o', '/dev/null']);
      assert.equal(c.rc, 18, 'curl: transfer closed with outstanding read data remaining');
      const lines = s.log().split('\n').filter((l) => l.includes(key));
      assert.equal(lines.length, 1, `the part is logged once:\n${s.log()}`);
      assert.match(lines[0]!, /not available/);
      assert.ok((await s.status()).server.aborted >= 3);
      assert.ok(gets(m, '/parts/pool/e-3m.bin').length >= 1);
    } finally {
      await m.close();
    }
  });
});

describe('jigdofs serve: lifecycle', () => {
  test('--max-clients answers 503 beyond the limit; SIGTERM lets the running response finish, then exits 0', async () => {
    // A mirror slow to answer keeps the first response running (a slow reader would not: loopback
    // socket buffers take a small image whole).
    const slowMirror = await startMirror({ root: fx.tree, latencyMs: 1500 });
    after(() => slowMirror.close());
    const jigdo = await jigdoWithServers(v, [partsUri(slowMirror)], path.join(work, 'life'));
    const s = await startServe([jigdo, '--cache-dir', path.join(work, 'cache-life'), '--max-clients', '1']);
    servers.push(s);
    const u = `${s.url}image.iso`;
    const slow = execFileP('curl', ['-sS', '-o', path.join(work, 'slow.iso'), u]);
    await waitFor(() => slowMirror.requests.length > 0, 10_000, 'the first part request');
    const busy = await httpGet(u);
    assert.equal(busy.status, 503);
    assert.equal(busy.headers['retry-after'], '1');
    const code = s.stop('SIGTERM');
    await slow;
    assert.equal(await code, 0);
    assert.equal(md5hex(await readFile(path.join(work, 'slow.iso'))), v.imageMd5, 'the response under way finished');
    assert.match(s.log(), /stopping \(SIGTERM\): 1 response\(s\) under way/);
    assert.match(s.log(), /stopped/);
    await truncate(path.join(work, 'slow.iso'), 0);
  });

  test('a second SIGTERM while it drains cuts the responses under way at once, and says so (not "after 30 s")', async () => {
    const slowMirror = await startMirror({ root: fx.tree, latencyMs: 3000 });
    after(() => slowMirror.close());
    const jigdo = await jigdoWithServers(v, [partsUri(slowMirror)], path.join(work, 'life2'));
    const s = await startServe([jigdo, '--cache-dir', path.join(work, 'cache-life2')]);
    servers.push(s);
    const slow = execFileP('curl', ['-sS', '-o', path.join(work, 'slow2.iso'), `${s.url}image.iso`]).catch(() => undefined);
    await waitFor(() => slowMirror.requests.length > 0, 10_000, 'the first part request');
    void s.stop('SIGTERM');
    await waitFor(async () => /stopping \(SIGTERM\)/.test(s.log()), 5_000, 'the drain');
    const code = await s.stop('SIGTERM');
    await slow;
    assert.equal(code, 0);
    assert.match(s.log(), /drain: 1 response\(s\) still running at a second signal, \d+\.\d s in, cut off/);
    assert.doesNotMatch(s.log(), /after 30 s/);
  });
});
