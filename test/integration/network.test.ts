/**
 * Parts from the network, against real HTTP mirrors on 127.0.0.1 (test/helpers/mirror-server.ts) with
 * scripted faults: the image is exact whenever one mirror has each part, only the parts no mirror gives
 * fail, the disk cache only ever holds verified files (also after kill -9), its size limit holds, and two
 * processes sharing parts fetch each part once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { makeImage } from '../../src/build/make-image.js';
import { sourceOptions, type SourceFlags } from '../../src/cli/options.js';
import { UnavailableError } from '../../src/format/errors.js';
import { loadJigdo, openImage, selectImage, type ImageSession } from '../../src/engine/session.js';
import { ImageReader } from '../../src/image/reader.js';
import { MirrorBoard } from '../../src/network/mirror-board.js';
import type { Network } from '../../src/network/network.js';
import { BIN, runCli } from '../helpers/cli.js';
import { buildFixtures, type FixtureSet, type FixtureVariant } from '../helpers/fixtures.js';
import { startMirror, type Mirror, type RequestRecord } from '../helpers/mirror-server.js';
import {
  assertCacheVerified, bytesByPath, cacheFiles, cacheLeftovers, fileMd5, gets, jigdoWithServers, missingPartLines, partsUri, waitFor,
} from '../helpers/network.js';

let fx: FixtureSet;
let v: FixtureVariant;
let work: string;
let image: Buffer;
/** A config file with small ranges, so that the 1.5 MB and 3 MB parts are fetched as parallel ranges. */
let rangedConfig: string;
let plainConfig: string;
const mirrors: Mirror[] = [];

const execFileAsync = promisify(execFile);

const P = {
  a: '/parts/pool/a-3k.bin',
  b: '/parts/pool/b-40k.bin',
  c: '/parts/extra/c-200k-copy.bin',
  d: '/parts/pool/d-1500k.bin',
  e: '/parts/pool/e-3m.bin',
  x: '/parts/tiny/exact-1024.bin',
};

async function mirror(latencyMs = 0): Promise<Mirror> {
  const m = await startMirror({ root: fx.tree, latencyMs });
  mirrors.push(m);
  return m;
}

let dirs = 0;
async function dir(name: string): Promise<string> {
  const d = path.join(work, `${++dirs}-${name}`);
  await mkdir(d, { recursive: true });
  return d;
}

before(async () => {
  fx = await buildFixtures();
  v = fx.variants['jf-md5-gzip'];
  image = await readFile(v.image);
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-net-test-'));
  rangedConfig = path.join(work, 'ranged.ini');
  await writeFile(rangedConfig, '[network]\nrange-size = 256K\nstreams-per-part = 4\n');
  plainConfig = path.join(work, 'plain.ini');
  await writeFile(plainConfig, '; nothing: defaults\n');
});

after(async () => {
  await Promise.all(mirrors.map((m) => m.close()));
  await rm(work, { recursive: true, force: true });
});

interface Opened {
  s: ImageSession;
  net: Network;
  close(): Promise<void>;
}

/** Opens an image in this process with the network wired exactly as the CLI does. */
async function open(jigdoPath: string, cacheDir: string, flags: Partial<SourceFlags> = {}): Promise<Opened> {
  const opts = sourceOptions({ local: [], scan: [], memory: '64M', quiet: true, cacheDir, config: rangedConfig, timeout: '1', retries: '1', ...flags });
  const jigdo = await loadJigdo(jigdoPath);
  const s = await openImage(jigdo, selectImage(jigdo), opts);
  return {
    s,
    net: opts.network!,
    close: async () => {
      await s.close();
      await opts.network!.close();
    },
  };
}

/** Reads the whole image sequentially, 128 KiB at a time (as FUSE does). */
async function readAll(reader: ImageReader): Promise<Buffer> {
  const out = Buffer.alloc(reader.size);
  for (let off = 0; off < reader.size; off += 128 << 10) (await reader.read(off, 128 << 10)).copy(out, off);
  return out;
}

const keyOf = (s: ImageSession, file: string): string => {
  const f = fx.files.find((x) => `/parts/${x.path.replace(/^parts\//, '')}` === file)!;
  const key = Buffer.from(f.md5, 'hex').toString('base64url');
  assert.ok(s.layout.parts.has(key), `${file} is a part of the image`);
  return key;
};

describe('one good mirror among bad ones', () => {
  test('whole mirrors failing in every way: make-image and the reader are exact, bad mirrors demoted', async () => {
    const bad = {
      notFound: await mirror(),
      error500: await mirror(),
      reset: await mirror(),
      stall: await mirror(),
      trickle: await mirror(),
      corrupt: await mirror(),
      short: await mirror(),
    };
    bad.notFound.fault('*', { kind: 'status', code: 404 });
    bad.error500.fault('*', { kind: 'status', code: 500 });
    bad.reset.fault('*', { kind: 'reset', afterBytes: 1000 });
    bad.stall.fault('*', { kind: 'stall', afterBytes: 0 });
    // Never silent for a whole timeout (1 s here), so only the minimum speed catches it.
    bad.trickle.fault('*', { kind: 'trickle', afterBytes: 100, everyMs: 300 });
    bad.corrupt.fault('*', { kind: 'corrupt' });
    bad.short.fault('*', { kind: 'short', bytes: 700 });
    const good = await mirror();
    const d = await dir('per-mirror');
    const jigdo = await jigdoWithServers(v, [...Object.values(bad), good].map(partsUri), d);

    const o = await open(jigdo, path.join(d, 'cache'));
    try {
      const r = await makeImage(o.s, path.join(d, 'out.iso'));
      assert.deepEqual(r.missing, []);
      assert.equal(await fileMd5(path.join(d, 'out.iso')), v.imageMd5);
      const stats = o.net.stats();
      const byMirror = new Map(stats.mirrors.map((m) => [m.mirror, m]));
      for (const [name, m] of Object.entries(bad)) {
        const st = byMirror.get(partsUri(m));
        assert.ok(st && st.failures > 0, `${name} mirror failed and was counted`);
      }
      // (every assert.ok gets a message: without one, node parses the source to make one, for minutes)
      assert.ok(byMirror.get(partsUri(bad.notFound))!.failuresByKind['not-found']! > 0, '404 counted as not-found');
      assert.ok(byMirror.get(partsUri(bad.stall))!.failuresByKind.timeout! > 0, 'stall counted as timeout');
      assert.ok(byMirror.get(partsUri(bad.trickle))!.failuresByKind.slow! > 0, 'trickle counted as slow');
      assert.ok(byMirror.get(partsUri(bad.corrupt))!.failuresByKind.mismatch! > 0, 'wrong bytes counted as mismatch');
      assert.ok(stats.mirrors.some((m) => m.demotions > 0), 'a failing mirror was demoted');
      assert.equal(stats.parts.fetched, 6);
      assert.equal(stats.parts.failed, 0);
      const distinct = [...o.s.layout.parts.values()].reduce((n, p) => n + p.length, 0);
      // Small parts can come whole from the resetting mirror (resumed with Range after each cut).
      // ... and so can the first bytes of a range from the trickling one.
      const early = byMirror.get(partsUri(bad.trickle))!.bytes;
      assert.ok(byMirror.get(partsUri(good))!.bytes >= distinct - 4024 - early, 'the good mirror sent the rest');
      assert.ok(byMirror.get(partsUri(good))!.bytes <= distinct, 'each part at most once');
      assert.equal(stats.parts.bytes, distinct);
      assert.doesNotThrow(() => JSON.stringify(stats), 'stats are JSON-serializable');
    } finally {
      await o.close();
    }
    const files = await assertCacheVerified(path.join(d, 'cache'));
    assert.equal(files.length, 6);

    // The reader over a fresh cache: a sequential stream (little read-ahead, so that what runs ahead of
    // the reads is the part prefetch).
    const o2 = await open(jigdo, path.join(d, 'cache2'));
    try {
      const reader = new ImageReader(o2.s.layout, o2.s.raw, o2.s.parts, { readaheadBlocks: 1, prefetchBytes: 8 << 20 });
      assert.ok((await readAll(reader)).equals(image), 'read through the reader: exact image');
      assert.ok(o2.s.parts.stats.prefetched >= 3, `parts were prefetched ahead of the stream: ${o2.s.parts.stats.prefetched}`);
    } finally {
      await o2.close();
    }
    await assertCacheVerified(path.join(d, 'cache2'));
  });

  test('faults on single parts: resumes with Range after a cut, moves on for the rest', async () => {
    const a = await mirror();
    const b = await mirror();
    a.fault(P.a, { kind: 'status', code: 404 });
    a.fault(P.b, { kind: 'status', code: 503 });
    a.fault(P.d, { kind: 'reset', afterBytes: 400_000, times: 1 });
    a.fault(P.e, { kind: 'corrupt', at: 2_500_000 });
    a.fault(P.c, { kind: 'short', bytes: 50_000, times: 1 });
    a.fault(P.x, { kind: 'stall', afterBytes: 0, times: 1 });
    const d = await dir('per-part');
    // The second mirror is a fallback (--try-last), so the first one is never second-guessed by a probe.
    const jigdo = await jigdoWithServers(v, [partsUri(a), `${partsUri(b)} --try-last`], d);
    const o = await open(jigdo, path.join(d, 'cache'), { config: plainConfig, retries: '0' });
    try {
      const r = await makeImage(o.s, path.join(d, 'out.iso'));
      assert.deepEqual(r.missing, []);
      assert.equal(await fileMd5(path.join(d, 'out.iso')), v.imageMd5);
    } finally {
      await o.close();
    }
    // Cut mid-body: resumed on the same mirror from where it stopped, never fetched from the other.
    const dReqs = gets(a, P.d);
    assert.equal(dReqs.length, 2, 'one cut request and one resume');
    assert.match(dReqs[1]!.range ?? '', /^bytes=[1-9]\d*-1499999$/);
    assert.equal(gets(b, P.d).length, 0);
    assert.equal(gets(b, P.c).length, 0, 'short body resumed on the same mirror');
    // 404, 503, wrong bytes and a stall without progress: the next mirror.
    for (const p of [P.a, P.b, P.e, P.x]) assert.equal(gets(b, p).length, 1, `${p} from the second mirror`);
    const files = await assertCacheVerified(path.join(d, 'cache'));
    assert.equal(files.length, 6);
  });
});

describe('no mirror has a part', () => {
  test('only its regions fail: UnavailableError naming the part; nothing bad is cached', async () => {
    const a = await mirror();
    const b = await mirror();
    a.fault(P.e, { kind: 'status', code: 404 });
    b.fault(P.e, { kind: 'corrupt' });
    const d = await dir('none');
    const jigdo = await jigdoWithServers(v, [partsUri(a), partsUri(b)], d);
    const o = await open(jigdo, path.join(d, 'cache'), { retries: '0' });
    try {
      const key = keyOf(o.s, P.e);
      const r = await makeImage(o.s, path.join(d, 'out.iso'));
      assert.deepEqual(r.missing, [key]);
      const off = o.s.layout.parts.get(key)!.offsets[0]!;
      // Everything before and after the part reads fine and exactly.
      assert.ok((await o.s.reader.read(0, off)).equals(image.subarray(0, off)), 'bytes before the part');
      const after = off + 3_000_000;
      assert.ok((await o.s.reader.read(after, image.length - after)).equals(image.subarray(after)), 'bytes after the part');
      await assert.rejects(o.s.reader.read(off + 1000, 4096), (err: Error) => err instanceof UnavailableError && err.message.includes(key));
      assert.equal(o.net.stats().parts.failed >= 1, true);
    } finally {
      await o.close();
    }
    const files = await assertCacheVerified(path.join(d, 'cache'));
    assert.equal(files.length, 5, 'every other part cached; the unavailable one is not');

    // The CLI: exit 1, naming the part, no image written.
    const r = await runCli(['make-image', jigdo, '-o', path.join(d, 'cli.iso'), '--cache-dir', path.join(d, 'cache-cli'), '--config', plainConfig, '--retries', '0'], { timeoutMs: 30_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /1 part\(s\) missing/);
    assert.ok(r.stderr.includes(Buffer.from(fx.files.find((f) => f.path === 'parts/pool/e-3m.bin')!.md5, 'hex').toString('base64url')));
    assert.deepEqual((await readdir(d)).filter((n) => n.startsWith('cli.iso')), []);
  });
});

/**
 * A `make-image` child whose fetch of P.e stalls after 1 MB: returns once that fetch is stalled, the
 * temporary image exists and the five other parts are cached.
 */
async function stalledMakeImage(name: string) {
  const m = await mirror();
  m.fault(P.e, { kind: 'stall', afterBytes: 1_000_000 });
  const d = await dir(name);
  const cache = path.join(d, 'cache');
  const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
  const out = path.join(d, 'out.iso');
  const child = spawn(process.execPath, [BIN, 'make-image', jigdo, '-o', out, '--cache-dir', cache, '--config', plainConfig, '--timeout', '60'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  // 'close', not 'exit': stderr is complete only then.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('close', (code, signal) => r({ code, signal })));
  try {
    await waitFor(() => gets(m, P.e).some((r) => r.bytes >= 1_000_000), 20_000, 'the stalled fetch');
    await waitFor(async () => (await cacheLeftovers(cache)).tmp.length > 0, 5_000, 'a temporary part file');
    await waitFor(async () => (await readdir(d)).some((f) => f.startsWith('out.iso.jigdofs-')), 5_000, 'the temporary image');
    await waitFor(async () => (await cacheFiles(cache)).length === 5, 10_000, 'the other parts cached');
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return { m, d, cache, jigdo, out, child, exited, stderr: () => stderr };
}

describe('failed reads', () => {
  test('a read over a missing part fails at once, without waiting for a slow part it also covers', async () => {
    const m = await mirror();
    m.fault(P.e, { kind: 'status', code: 404 });
    m.fault(P.d, { kind: 'delay', ms: 6000 });
    const d = await dir('prompt-eio');
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    const o = await open(jigdo, path.join(d, 'cache'), { timeout: '20' });
    try {
      const span = (p: string) => {
        const file = fx.files.find((f) => `/parts/${f.path.replace(/^parts\//, '')}` === p)!;
        const part = o.s.layout.parts.get(Buffer.from(file.md5, 'hex').toString('base64url'))!;
        return [part.offsets[0]!, part.offsets[0]! + part.length];
      };
      const [d0, d1] = span(P.d);
      const [e0, e1] = span(P.e);
      const from = Math.min(d0!, e0!);
      const t0 = performance.now();
      await assert.rejects(o.s.reader.read(from, Math.max(d1!, e1!) - from), UnavailableError);
      const ms = performance.now() - t0;
      assert.ok(ms < 3000, `the read failed after ${ms.toFixed(0)} ms: it waited for the delayed part`);
      assert.ok(gets(m, P.e).length >= 1, 'the missing part was asked for');
    } finally {
      await o.close();
    }
  });
});

describe('https', () => {
  test('parts over TLS: exact with the certificate trusted, a clear failure without', async () => {
    const d = await dir('https');
    // A throwaway certificate for 127.0.0.1, trusted only through NODE_EXTRA_CA_CERTS in the child.
    const key = path.join(d, 'key.pem');
    const cert = path.join(d, 'cert.pem');
    await execFileAsync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
      '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    const m = await startMirror({ root: fx.tree, tls: { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8') } });
    mirrors.push(m);
    assert.match(m.url, /^https:/);
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    const env = (extra: NodeJS.ProcessEnv) => ({ ...process.env, XDG_CACHE_HOME: d, XDG_CONFIG_HOME: d, JIGDOFS_DEBUG: '', ...extra });
    const out = path.join(d, 'out.iso');

    const trusted = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'c1'), '--config', plainConfig], { env: env({ NODE_EXTRA_CA_CERTS: cert }) });
    assert.equal(trusted.code, 0, trusted.stderr);
    assert.equal(await fileMd5(out), v.imageMd5);
    for (const p of Object.values(P)) assert.equal(gets(m, p).length, 1, `${p} fetched once over https`);

    await rm(out);
    const untrusted = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'c2'), '--config', plainConfig, '--retries', '0'], { env: env({}) });
    assert.equal(untrusted.code, 1, untrusted.stderr);
    assert.match(untrusted.stderr, /6 part\(s\) missing/);
    const partLines = missingPartLines(untrusted.stderr);
    assert.equal(partLines.length, 6, untrusted.stderr);
    for (const l of partLines) assert.match(l, /: .*self[- ]signed certificate/i, 'each missing part says why');
    assert.deepEqual((await readdir(d)).filter((f) => f.startsWith('out.iso')), []);
  });
});

describe('the disk cache', () => {
  test('kill -9 during a fetch leaves no bad part; the rerun completes', async () => {
    const { m, cache, jigdo, out, child, exited } = await stalledMakeImage('kill');
    try {
      // A part's lock goes a moment after its rename: wait until only the stalled fetch holds one.
      await waitFor(async () => (await cacheLeftovers(cache)).locks.length === 1, 10_000, 'the other fetches finished');
    } finally {
      child.kill('SIGKILL');
    }
    await exited;
    const left = await cacheLeftovers(cache);
    assert.equal(left.tmp.length, 1, 'the killed fetch left its partial file behind');
    assert.equal(left.locks.length, 1, 'and its lock');
    const files = await assertCacheVerified(cache);
    assert.equal(files.length, 5, 'the partial part is not under its checksum name');

    m.fault(P.e, null);
    const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', cache, '--config', plainConfig], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fileMd5(out), v.imageMd5);
    assert.deepEqual(await cacheLeftovers(cache), { tmp: [], locks: [] }, 'leftovers of the dead process removed');
    assert.equal((await assertCacheVerified(cache)).length, 6);
  });

  test('Ctrl-C during make-image removes the half-written image; the rerun takes the fetched parts from the cache', async () => {
    const { m, d, jigdo, out, cache, child, exited, stderr } = await stalledMakeImage('sigint');
    try {
      child.kill('SIGINT');
      // It dies of the signal after cleaning up, as a shell loop around it expects of Ctrl-C.
      assert.deepEqual(await exited, { code: null, signal: 'SIGINT' }, stderr());
    } finally {
      child.kill('SIGKILL');
    }
    assert.match(stderr(), /out\.iso: interrupted \(SIGINT\): not written/);
    assert.deepEqual((await readdir(d)).filter((f) => f.startsWith('out.iso')), [], 'neither the image nor its temporary file');

    m.fault(P.e, null);
    const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', cache, '--config', plainConfig], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fileMd5(out), v.imageMd5);
    for (const p of Object.values(P)) if (p !== P.e) assert.equal(gets(m, p).length, 1, `${p} fetched once in both runs`);
  });

  test('--cache-size holds (least recently used parts evicted); the image is still exact', async () => {
    const m = await mirror();
    const d = await dir('limit');
    const cache = path.join(d, 'cache');
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    const limit = 4 << 20; // the parts need 4.94 MB
    for (let run = 0; run < 2; run++) {
      const r = await runCli(['make-image', jigdo, '-o', path.join(d, 'out.iso'), '--cache-dir', cache, '--config', plainConfig, '--cache-size', '4M'], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await fileMd5(path.join(d, 'out.iso')), v.imageMd5);
      const files = await assertCacheVerified(cache);
      const total = files.reduce((n, f) => n + f.size, 0);
      assert.ok(total <= limit, `cache holds ${total} bytes, limit ${limit}`);
      assert.ok(files.length < 6, 'something was evicted');
    }
  });

  test('two processes building images that share parts fetch each part once', async () => {
    const m = await mirror(40);
    const d = await dir('two');
    const cache = path.join(d, 'cache');
    const j1 = await jigdoWithServers(fx.variants['jf-md5-gzip'], [partsUri(m)], path.join(d, 'one'));
    const j2 = await jigdoWithServers(fx.variants['jf-md5-bzip2'], [partsUri(m)], path.join(d, 'two'));
    const [r1, r2] = await Promise.all([
      runCli(['make-image', j1, '-o', path.join(d, 'one.iso'), '--cache-dir', cache, '--config', plainConfig], { timeoutMs: 30_000 }),
      runCli(['make-image', j2, '-o', path.join(d, 'two.iso'), '--cache-dir', cache, '--config', plainConfig], { timeoutMs: 30_000 }),
    ]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(await fileMd5(path.join(d, 'one.iso')), v.imageMd5);
    assert.equal(await fileMd5(path.join(d, 'two.iso')), v.imageMd5);
    for (const p of Object.values(P)) {
      const file = fx.files.find((f) => `/parts/${f.path.replace(/^parts\//, '')}` === p)!;
      assert.equal(gets(m, p).length, 1, `${p} requested once`);
      assert.equal(bytesByPath(m).get(p), file.size, `${p} sent once`);
    }
  });
});

describe('remote .jigdo and configuration', () => {
  test('a gzipped .jigdo by URL: info and make-image; its template fetched, verified, cached', async () => {
    const parts = await mirror();
    const d = await dir('remote');
    const site = path.join(d, 'site');
    const local = await jigdoWithServers(v, [partsUri(parts)], site);
    await writeFile(path.join(site, 'img.jigdo'), gzipSync(await readFile(local)));
    await writeFile(path.join(site, 'wrong.jigdo'), gzipSync((await readFile(local, 'utf8')).replace(/^Template=.*$/m, 'Template=other.template')));
    await writeFile(path.join(site, 'other.template'), await readFile(fx.variants['jf-sha256-gzip'].template));
    const web = await startMirror({ root: site });
    mirrors.push(web);
    const cache = path.join(d, 'cache');
    const cwd = await dir('remote-cwd');

    const info = await runCli(['info', `${web.url}img.jigdo`, '--cache-dir', cache, '--config', plainConfig, '--json'], { timeoutMs: 30_000, cwd });
    assert.equal(info.code, 0, info.stderr);
    const j = JSON.parse(info.stdout) as { size: number; jigdo: { file: string }; template: { file: string } };
    assert.equal(j.size, v.imageSize);
    assert.equal(j.jigdo.file, `${web.url}img.jigdo`);
    assert.ok(j.template.file.startsWith(path.join(cache, 'templates')), j.template.file);

    const mk = await runCli(['make-image', `${web.url}img.jigdo`, '--cache-dir', cache, '--config', plainConfig], { timeoutMs: 30_000, cwd });
    assert.equal(mk.code, 0, mk.stderr);
    assert.equal(await fileMd5(path.join(cwd, 'image.iso')), v.imageMd5);
    assert.equal(gets(web, '/jf-md5-gzip.template').length, 1, 'the template was fetched once and then taken from the cache');
    assert.equal((await assertCacheVerified(cache)).length, 7);

    // The cache is content-addressed: a .jigdo naming the same template checksum at another URL needs no
    // download at all.
    const same = await runCli(['info', `${web.url}wrong.jigdo`, '--cache-dir', cache, '--config', plainConfig], { timeoutMs: 30_000, cwd });
    assert.equal(same.code, 0, same.stderr);
    assert.equal(gets(web, '/other.template').length, 0);
    // With an empty cache the other template is fetched, and does not match: one clear line, nothing
    // cached under a checksum name.
    const cache2 = path.join(d, 'cache2');
    const bad = await runCli(['info', `${web.url}wrong.jigdo`, '--cache-dir', cache2, '--config', plainConfig], { timeoutMs: 30_000, cwd });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^jigdofs: http:\/\/127\.0\.0\.1:\d+\/other\.template: downloaded template does not match/);
    assert.equal(bad.stderr.trim().split('\n').length, 1);
    assert.equal((await assertCacheVerified(cache2)).length, 0);
    assert.deepEqual(await cacheLeftovers(cache2), { tmp: [], locks: [] });
  });

  test('[Include URL] adds servers; --offline never touches the network', async () => {
    const m = await mirror();
    const d = await dir('include');
    const site = path.join(d, 'site');
    await mkdir(site);
    await writeFile(path.join(site, 'servers.jigdo'), `[Servers]\nParts=${partsUri(m)}\n`);
    const web = await startMirror({ root: site });
    mirrors.push(web);
    const base = await jigdoWithServers(v, [], d);
    const text = (await readFile(base, 'utf8')).replace(/^\[Servers\]$/m, `[Include ${web.url}servers.jigdo]\n[Servers]`);
    await writeFile(base, text);
    assert.ok(!/^Parts=/m.test(text), 'no Parts= server in the .jigdo itself');
    const cache = path.join(d, 'cache');

    const off = await runCli(['make-image', base, '-o', path.join(d, 'off.iso'), '--cache-dir', cache, '--config', plainConfig, '--offline'], { timeoutMs: 30_000 });
    assert.equal(off.code, 1);
    assert.equal(m.requests.length + web.requests.length, 0, '--offline made no request');
    const offLines = missingPartLines(off.stderr);
    assert.equal(offLines.length, 6, off.stderr);
    for (const l of offLines) assert.match(l, /not in the cache, and --offline keeps the mirrors out$/, 'the reason names --offline');

    const on = await runCli(['make-image', base, '-o', path.join(d, 'on.iso'), '--cache-dir', cache, '--config', plainConfig], { timeoutMs: 30_000 });
    assert.equal(on.code, 0, on.stderr);
    assert.equal(await fileMd5(path.join(d, 'on.iso')), v.imageMd5);
    assert.equal(gets(web, '/servers.jigdo').length, 1);

    // Offline again, with the parts now cached: complete, still without a request for a part.
    const before = m.requests.length;
    const again = await runCli(['make-image', base, '-o', path.join(d, 'again.iso'), '--cache-dir', cache, '--config', plainConfig, '--offline'], { timeoutMs: 30_000 });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await fileMd5(path.join(d, 'again.iso')), v.imageMd5);
    assert.equal(m.requests.length, before);
  });

  test('--mirror and config-file mirrors are tried first; bad config values give one line', async () => {
    const listed = await mirror();
    listed.fault('*', { kind: 'status', code: 404 });
    const good = await mirror();
    const d = await dir('mirror-opt');
    const jigdo = await jigdoWithServers(v, [partsUri(listed)], d);

    const r = await runCli(['make-image', jigdo, '-o', path.join(d, 'a.iso'), '--cache-dir', path.join(d, 'c1'), '--config', plainConfig, '--mirror', `Parts=${partsUri(good)}`], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fileMd5(path.join(d, 'a.iso')), v.imageMd5);
    assert.equal(listed.requests.length, 0, "the .jigdo's own server was not needed");

    const xdg = path.join(d, 'xdg');
    await mkdir(path.join(xdg, 'jigdofs'), { recursive: true });
    await writeFile(path.join(xdg, 'jigdofs', 'config.ini'), `[mirrors]\nParts = ${partsUri(good)}\n[cache]\nsize = 1G\n`);
    const env = { ...process.env, XDG_CONFIG_HOME: xdg };
    const c = await runCli(['make-image', jigdo, '-o', path.join(d, 'b.iso'), '--cache-dir', path.join(d, 'c2')], { timeoutMs: 30_000, env });
    assert.equal(c.code, 0, c.stderr);
    assert.equal(await fileMd5(path.join(d, 'b.iso')), v.imageMd5);
    assert.equal(listed.requests.length, 0);

    await writeFile(path.join(xdg, 'jigdofs', 'config.ini'), '[network]\ntimeout = soon\n');
    const bad = await runCli(['info', jigdo, '--cache-dir', path.join(d, 'c2')], { timeoutMs: 30_000, env });
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.trim(), `jigdofs: ${path.join(xdg, 'jigdofs', 'config.ini')}: [network] timeout = "soon": expected seconds, more than 0 and at most 3600`);
    const usage = await runCli(['info', jigdo, '--config', plainConfig, '--mirror', 'Parts=ftp://x/'], { timeoutMs: 30_000 });
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--mirror Parts=ftp:\/\/x\/: "ftp:\/\/x\/" is not an http/);
  });

  test('redirects are followed (mirror networks redirect to a nearby host)', async () => {
    const m = await mirror();
    const d = await dir('redirect');
    let redirected = 0;
    const redirector: Server = createHttpServer((req, res) => {
      redirected++;
      res.writeHead(302, { location: `${m.url.replace(/\/$/, '')}${req.url ?? '/'}` }).end();
    });
    await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
    try {
      const base = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/parts/`;
      const o = await open(await jigdoWithServers(v, [base], d), path.join(d, 'cache'));
      try {
        const r = await makeImage(o.s, path.join(d, 'out.iso'));
        assert.deepEqual(r.missing, []);
      } finally {
        await o.close();
      }
      assert.equal(await fileMd5(path.join(d, 'out.iso')), v.imageMd5);
      assert.ok(redirected >= 6, `every part went through the redirect (${redirected})`);
      assert.equal(new Set(m.requests.map((r) => r.path)).size, 6);
    } finally {
      redirector.closeAllConnections();
      await new Promise((r) => redirector.close(r));
    }
  });

  test('HTTP_PROXY is used, NO_PROXY bypasses it', async () => {
    const m = await mirror();
    const d = await dir('proxy');
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    let tunnels = 0;
    let forwarded = 0;
    const proxy: Server = createHttpServer((req, res) => {
      // Plain proxying of absolute-form requests (loopback targets only).
      const target = new URL(req.url ?? '');
      if (target.hostname !== '127.0.0.1') return void res.writeHead(403).end();
      forwarded++;
      const up = httpRequest({ host: '127.0.0.1', port: target.port, path: target.pathname, method: req.method, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    proxy.on('connect', (req, socket, head) => {
      const [host, port] = (req.url ?? '').split(':');
      if (host !== '127.0.0.1') return void socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      tunnels++;
      const up = connect(Number(port), host, () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        up.write(head);
        up.pipe(socket);
        socket.pipe(up);
      });
      up.on('error', () => socket.destroy());
      socket.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const env = { ...process.env, HTTP_PROXY: proxyUrl, NO_PROXY: '' };
      const r = await runCli(['make-image', jigdo, '-o', path.join(d, 'p.iso'), '--cache-dir', path.join(d, 'c1'), '--config', plainConfig], { timeoutMs: 30_000, env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await fileMd5(path.join(d, 'p.iso')), v.imageMd5);
      assert.ok(tunnels + forwarded > 0, 'requests went through the proxy');

      const seen = tunnels + forwarded;
      const env2 = { ...process.env, HTTP_PROXY: proxyUrl, NO_PROXY: '127.0.0.1' };
      const r2 = await runCli(['make-image', jigdo, '-o', path.join(d, 'q.iso'), '--cache-dir', path.join(d, 'c2'), '--config', plainConfig], { timeoutMs: 30_000, env: env2 });
      assert.equal(r2.code, 0, r2.stderr);
      assert.equal(tunnels + forwarded, seen, 'NO_PROXY: straight to the mirror');
    } finally {
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    }
  });
});

describe('mirror speed', () => {
  test('big parts come as parallel ranges', async () => {
    const finished = new Set<RequestRecord>();
    const m = await startMirror({ root: fx.tree, latencyMs: 30, onResponse: (r) => finished.add(r) });
    mirrors.push(m);
    const d = await dir('ranges');
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    let most = 0;
    const o = await open(jigdo, path.join(d, 'cache'));
    const timer = setInterval(() => {
      most = Math.max(most, m.requests.filter((r) => !finished.has(r)).length);
    }, 2);
    try {
      await o.s.parts.locate(keyOf(o.s, P.e));
    } finally {
      clearInterval(timer);
      await o.close();
    }
    const ranged = gets(m, P.e).filter((r) => r.range);
    assert.equal(ranged.length, 12, 'a 3 MB part in 256 KiB ranges');
    assert.deepEqual(new Set(ranged.map((r) => r.range)).size, 12);
    assert.ok(most >= 2, `ranges fetched in parallel (at most ${most} seen at once)`);
    assert.equal((await assertCacheVerified(path.join(d, 'cache'))).length, 1);
  });

  test('the mirror board: failing and much slower mirrors are demoted for a while, then tried again', () => {
    let now = 1_000_000;
    const lines: string[] = [];
    const board = new MirrorBoard((l) => lines.push(l), () => now);
    const c = (mirror: string, weight = 0, user = false) => ({ mirror, weight, user });
    const [a, b, x] = [c('http://a/'), c('http://b/'), c('http://x/')];
    assert.equal(board.probe([a, b])?.mirror, 'http://b/', 'the first fetch measures the other mirror');
    assert.equal(board.probe([a, b]), undefined, 'then only one fetch in eight');
    assert.equal(board.probe([c('http://u/', 0, true), b]), undefined, 'a mirror the user named is not second-guessed');
    // Three failures in a row: demoted, ordered last, for 30 s.
    for (let i = 0; i < 3; i++) {
      board.requestStarted(a.mirror);
      board.requestFailed(a.mirror, 'status', 'HTTP 500');
    }
    assert.deepEqual(board.order([a, b]).map((m) => m.mirror), ['http://b/', 'http://a/']);
    assert.match(lines.join('\n'), /mirror http:\/\/a\/ demoted for 30 s: 3 failures in a row \(last: HTTP 500\)/);
    now += 31_000;
    assert.deepEqual(board.order([a, b]).map((m) => m.mirror), ['http://a/', 'http://b/'], 'forgiven after a while');
    // Much slower (latency and bandwidth for 1 MiB): demoted once both are measured.
    for (let i = 0; i < 3; i++) {
      board.requestStarted(b.mirror);
      board.requestDone(b.mirror, 1 << 20, 20, 2);
    }
    assert.equal(board.isDemoted(x.mirror), false);
    for (let i = 0; i < 3; i++) {
      board.requestStarted(x.mirror);
      board.requestDone(x.mirror, 1 << 20, 900, 300);
    }
    assert.equal(board.isDemoted(x.mirror), true);
    const snap = board.snapshot();
    const xs = snap.mirrors.find((m) => m.mirror === 'http://x/')!;
    assert.equal(xs.demoted, true);
    assert.match(xs.demotedWhy ?? '', /^slow: \d+ ms per MiB, the best mirror needs \d+ ms$/);
    assert.equal(snap.mirrors.find((m) => m.mirror === 'http://b/')!.demoted, false);
    assert.ok(snap.mirrors.every((m) => m.active === 0), 'no request left active');
    assert.deepEqual(JSON.parse(JSON.stringify(snap)), snap);
  });
});
