/**
 * Hostile and broken mirrors (issue 7): a mirror answering every request with a short HTML page, a remote
 * template that never ends or is not a template at all, and a mirror that accepts connections and never
 * answers. Each must end in clean, prompt failures that name what failed, leave nothing behind in the cache,
 * and never take the process (or a mount's daemon) down.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { assertCleanFailure, assertOk, describeRun, runCli, type CliResult } from '../helpers/cli.js';
import { buildFixtures, type FixtureSet, type FixtureVariant } from '../helpers/fixtures.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { mountJigdo, type TestMount } from '../helpers/mount.js';
import { cacheFiles, cacheLeftovers, fileMd5, gets, jigdoWithServers, manyParts, missingPartLines, partsUri, sleep, waitFor } from '../helpers/network.js';
import { rootActor, userActor } from '../helpers/actor.js';
import { asUser } from '../helpers/test-user.js';

let fx: FixtureSet;
let v: FixtureVariant;
let work: string;
/** Small ranges, so that the 1.5 MB and 3 MB parts are fetched as parallel ranges (the realistic case). */
let rangedConfig: string;
const mirrors: Mirror[] = [];
const mounts: TestMount[] = [];

before(async () => {
  fx = await buildFixtures();
  v = fx.variants['jf-md5-gzip'];
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-hostile-test-'));
  rangedConfig = path.join(work, 'ranged.ini');
  await writeFile(rangedConfig, '[network]\nrange-size = 256K\nstreams-per-part = 4\n');
});

after(async () => {
  for (const m of mounts) await m.cleanup();
  await Promise.all(mirrors.map((m) => m.close()));
  await rm(work, { recursive: true, force: true });
});

async function mirror(root: string): Promise<Mirror> {
  const m = await startMirror({ root });
  mirrors.push(m);
  return m;
}

let dirs = 0;
async function dir(name: string): Promise<string> {
  const d = path.join(work, `${++dirs}-${name}`);
  await mkdir(d, { recursive: true });
  return d;
}

/** Signs of a crash rather than a handled error (as in assertCleanFailure). */
const CRASH = /^\s+at |\b(TypeError|RangeError|ReferenceError|AbortError|RequestAbortedError|Uncaught|UnhandledPromiseRejection)\b|node:internal|ERR_[A-Z_]+/m;

/** make-image failed cleanly for missing parts: exit 1, no crash, one line per part naming its URL and why. */
function assertMissingParts(r: CliResult, out: string, parts: number, why: RegExp): void {
  const run = describeRun(r);
  assert.equal(r.timedOut, false, `hung:\n${run}`);
  assert.equal(r.code, 1, `expected exit 1:\n${run}`);
  assert.doesNotMatch(r.stderr + r.stdout, CRASH, `looks like a crash:\n${run}`);
  assert.ok(r.stderr.includes(`jigdofs: ${out}: not written: ${parts} part(s) missing:`), `names the image:\n${run}`);
  // (make-image lists 20 parts, then says how many more)
  const lines = missingPartLines(r.stderr);
  assert.equal(lines.length, Math.min(parts, 20), `one line per part:\n${run}`);
  if (parts > 20) assert.ok(r.stderr.includes(`  ... and ${parts - 20} more`), `says how many more:\n${run}`);
  for (const l of lines) assert.match(l, why, `the line says why:\n${run}`);
}

/** Nothing left of a failed make-image: no temporary image beside `out`, no partial part, no lock. */
async function assertNothingLeft(out: string, cache: string): Promise<void> {
  const base = path.basename(out);
  assert.deepEqual((await readdir(path.dirname(out))).filter((f) => f.startsWith(base)), [], 'no image, no temporary image');
  assert.deepEqual(await cacheLeftovers(cache), { tmp: [], locks: [] }, 'no partial part file, no lock');
}

describe('a mirror answering 200 with a short HTML page (captive portal, maintenance page)', () => {
  test('make-image fails cleanly every time: one reason per part, nothing left behind', async () => {
    const portal = await mirror(fx.tree);
    // Ranged requests get their (wrong) answer first: their bodies are given up on while the request
    // from byte 0 still runs, which is when an unread body used to be destroyed with no 'error' listener.
    portal.fault('*', { kind: 'page', bytes: 60, fromZeroDelayMs: 300 });
    const d = await dir('portal');
    const jigdo = await jigdoWithServers(v, [partsUri(portal)], d);
    const cache = path.join(d, 'cache');
    const out = path.join(d, 'out', 'image.iso');
    await mkdir(path.dirname(out));
    for (let run = 0; run < 4; run++) {
      const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', cache, '--config', rangedConfig, '--retries', '1'], { timeoutMs: 30_000 });
      assertMissingParts(r, out, 6, /: mirrors: every mirror failed: http:\/\/127\.0\.0\.1:\d+\/parts\/\S+: (the file there has 60 bytes, expected \d+|HTTP 200 to a Range request: the server ignores Range)/);
      await assertNothingLeft(out, cache);
    }
    assert.ok(portal.requests.some((q) => q.range && !q.range.startsWith('bytes=0-')), 'parallel ranges were asked for');
  });

  test("a mount's daemon survives it: EIO for the parts, the rest of the image still served", async () => {
    const portal = await mirror(fx.tree);
    portal.fault('*', { kind: 'page', bytes: 60, fromZeroDelayMs: 300 });
    const d = await dir('portal-mount');
    const jigdo = await jigdoWithServers(v, [partsUri(portal)], d);
    const m = await mountJigdo(jigdo, ['--config', rangedConfig, '--retries', '0'], { cacheDir: path.join(d, 'cache') });
    mounts.push(m);
    const pid = await m.pid();
    const fh = await open(m.file('image.iso'), 'r');
    try {
      // The 1.5 MB and 3 MB parts lie in 1 MB .. 5 MB of this image; read across them a few times.
      for (let i = 0; i < 3; i++) {
        for (let off = 1_000_000; off < 5_000_000; off += 500_000) {
          await assert.rejects(fh.read(Buffer.alloc(65536), 0, 65536, off), /EIO/);
        }
      }
      const head = Buffer.alloc(32768);
      const { bytesRead } = await fh.read(head, 0, head.length, 0);
      assert.equal(bytesRead, head.length, 'the image start (template data) is still served');
    } finally {
      await fh.close();
    }
    assert.equal(await m.pid(), pid, 'the same daemon answers status');
    const log = await m.log();
    assert.doesNotMatch(log, /internal error|uncaught|AbortError/i, `no crash in the log:\n${log}`);
    const u = await m.umount();
    assert.equal(u.code, 0, u.stderr);
  });
});

describe('a remote template that is too large or not a template', () => {
  /** A site serving `img.jigdo` (its template checksum kept or not) and the template, with `fault` on the template. */
  async function site(name: string, verified: boolean): Promise<{ web: Mirror; jigdoUrl: string; templateUrl: string; cache: string; d: string }> {
    const d = await dir(name);
    const root = path.join(d, 'site');
    const local = await jigdoWithServers(v, [], root, 'img.jigdo');
    if (!verified) await writeFile(local, (await readFile(local, 'utf8')).replace(/^Template-MD5Sum=.*\n/m, ''));
    const web = await mirror(root);
    return { web, jigdoUrl: `${web.url}img.jigdo`, templateUrl: `${web.url}${path.basename(v.template)}`, cache: path.join(d, 'cache'), d };
  }

  /** Nothing of the download stays in the cache: no template (verified or not), no partial file, no lock. */
  async function assertNoTemplate(cache: string): Promise<void> {
    assert.deepEqual(await cacheFiles(cache), [], 'no template under a checksum name');
    const unverified = await readdir(path.join(cache, 'templates', 'unverified')).catch(() => [] as string[]);
    assert.deepEqual(unverified, [], 'no unverified template');
    assert.deepEqual(await cacheLeftovers(cache), { tmp: [], locks: [] }, 'no partial file, no lock');
  }

  test('an endless body that is not a template: refused after its first bytes', async () => {
    const s = await site('garbage', true);
    s.web.fault(`/${path.basename(v.template)}`, { kind: 'endless' });
    const r = await runCli(['missing', s.jigdoUrl, '--cache-dir', s.cache, '--config', rangedConfig], { timeoutMs: 20_000, cwd: s.d });
    assertCleanFailure(r, s.templateUrl, /not a jigdo template \(it starts with "xxxx/);
    assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
    const sent = gets(s.web, `/${path.basename(v.template)}`).reduce((n, q) => n + q.bytes, 0);
    assert.ok(sent < 64 << 20, `${sent} bytes were sent before the download was refused`);
    await assertNoTemplate(s.cache);
  });

  test('a template header, then more bytes than --cache-size: stopped at the limit, the partial file removed', async () => {
    const s = await site('endless', false);
    s.web.fault(`/${path.basename(v.template)}`, { kind: 'endless', prefix: 'JigsawDownload template 1.2 jigdo-file/0.8.0\r\n' });
    const r = await runCli(['missing', s.jigdoUrl, '--cache-dir', s.cache, '--config', rangedConfig, '--cache-size', '1M'], { timeoutMs: 20_000, cwd: s.d });
    assertCleanFailure(r, s.templateUrl, /: it goes on past the cache's limit of 1\.0 MiB \(--cache-size, capped by free disk space\): download stopped there$/);
    assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
    await assertNoTemplate(s.cache);
  });

  test('a Content-Length above the limit: refused before the body', async () => {
    const s = await site('claimed', true);
    s.web.fault(`/${path.basename(v.template)}`, { kind: 'endless', prefix: 'JigsawDownload template 1.2 x\r\n', contentLength: 5_000_000_000 });
    const r = await runCli(['make-image', s.jigdoUrl, '--cache-dir', s.cache, '--config', rangedConfig, '--cache-size', '10M'], { timeoutMs: 20_000, cwd: s.d });
    assertCleanFailure(r, s.templateUrl, /: it has 5000000000 bytes, more than the cache's limit of 10\.0 MiB \(--cache-size, capped by free disk space\): not downloaded$/);
    await assertNoTemplate(s.cache);
    assert.deepEqual((await readdir(s.d)).filter((f) => f.endsWith('.iso') || f.includes('jigdofs-')), [], 'no image started');
  });
});

describe('a mirror that accepts connections and never answers', () => {
  test('make-image gives up on it after a few timeouts, not a timeout per part', async () => {
    const dead = await mirror(fx.tree);
    dead.fault('*', { kind: 'hang' });
    const d = await dir('dead-make');
    const { jigdo } = await manyParts(d, 100, partsUri(dead));
    const cache = path.join(d, 'cache');
    const out = path.join(d, 'out', 'many.img');
    await mkdir(path.dirname(out));
    // Before: 100 parts x 2 rounds x 1 s over 8 connections, 30 s and more. Now: a few timeouts.
    const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', cache, '--timeout', '1', '--retries', '1'], { timeoutMs: 90_000 });
    assert.ok(r.ms < 15_000, `make-image took ${r.ms} ms`);
    const mirrorUrl = partsUri(dead).replace(/[./]/g, '\\$&');
    assertMissingParts(r, out, 100, new RegExp(`: every mirror failed: ${mirrorUrl}p-\\d+\\.bin: (mirror ${mirrorUrl} is not answering: \\d+ failures in a row, last: no response headers in time|no response headers in time)$`));
    const skipped = missingPartLines(r.stderr).filter((l) => l.includes('is not answering'));
    assert.ok(skipped.length >= 10, `most parts skipped the dead mirror at once (${skipped.length} of 20 listed):\n${r.stderr}`);
    assert.ok(dead.requests.length < 40, `${dead.requests.length} requests to the dead mirror`);
    await assertNothingLeft(out, cache);
  });

  test('a mount: once the mirror is down, a read over a part not yet tried fails with EIO at once', async () => {
    const dead = await mirror(fx.tree);
    dead.fault('*', { kind: 'hang' });
    const d = await dir('dead-mount');
    const { jigdo, partOffsets } = await manyParts(d, 40, partsUri(dead));
    // (Default retries: a part's later rounds do not wait out their backoffs for a mirror down by timeouts.)
    const m = await mountJigdo(jigdo, ['--timeout', '3', '--retries', '2'], { cacheDir: path.join(d, 'cache') });
    mounts.push(m);
    const fh = await open(m.file('many.img'), 'r');
    try {
      // The first read covers 16 parts: their fetches run together and time out together.
      await assert.rejects(fh.read(Buffer.alloc(65536), 0, 65536, partOffsets[0]!), /EIO/);
      const failures = async (): Promise<number> => {
        const s = (await m.status()) as { network?: { mirrors: Array<{ mirror: string; consecutiveFailures: number }> } };
        return s.network?.mirrors.find((x) => x.mirror === partsUri(dead))?.consecutiveFailures ?? 0;
      };
      await waitFor(async () => (await failures()) >= 3, 30_000, 'three timeouts in a row');
      // A part no request was made for yet: before, 2 x 3 s of timeouts; now no request at all.
      const before = dead.requests.length;
      const t0 = Date.now();
      await assert.rejects(fh.read(Buffer.alloc(4096), 0, 4096, partOffsets[35]!), /EIO/);
      const ms = Date.now() - t0;
      assert.ok(ms < 1000, `the read took ${ms} ms`); // (with its rounds' backoffs waited out: 1.5 s at least)
      assert.equal(dead.requests.length, before, 'no request to the dead mirror');
      const s = (await m.status()) as { network: { mirrors: Array<{ mirror: string; down: boolean; downWhy?: string }> } };
      const st = s.network.mirrors.find((x) => x.mirror === partsUri(dead))!;
      assert.equal(st.down, true, 'status shows it down');
      assert.match(st.downWhy ?? '', /^\d+ failures in a row, last: no response headers in time$/);
    } finally {
      await fh.close();
    }
    const log = await m.log();
    assert.match(log, new RegExp(`mirror ${partsUri(dead).replace(/[./]/g, '\\$&')} is not answering`), log);
  });

  for (const actor of [rootActor, () => userActor({ runtimeDir: true })]) {
    test(`a mount, as ${actor === rootActor ? 'root' : 'a regular user'}: 40 reads waiting on it hold up neither reads of template data nor a listing`, async () => {
      // A default mount's reads reach the daemon as the kernel's background requests, of which it let 12 wait: the
      // 13th read of anything waited in the kernel for one of them, up to the network timeout (MAX_BACKGROUND_READS).
      const A = actor();
      const dead = await mirror(fx.tree);
      dead.fault('*', { kind: 'hang' });
      const d = await dir('dead-many-readers');
      const gap = 1 << 20; // readers' pages (and the kernel's read-ahead around them) never touch the template read's
      const { jigdo, partOffsets } = await manyParts(d, 40, partsUri(dead), gap);
      A.share(d);
      const m = await mountJigdo(jigdo, ['--timeout', '20', '--retries', '1'], { cacheDir: A.tempDir('jigdofs-hostile-cache-'), env: A.env, user: A.user });
      mounts.push(m);
      const image = m.file('many.img');
      const readers = partOffsets.map((at) => {
        const dd: [string, string[]] = ['dd', [`if=${image}`, 'of=/dev/null', 'bs=4096', 'count=1', `skip=${at}`, 'iflag=skip_bytes', 'status=none']];
        return spawn(...(A.user ? asUser(A.user, ...dd) : dd), { stdio: 'ignore' });
      });
      try {
        const inFlight = async (): Promise<number> => ((await m.status()) as { images: Array<{ parts: { inFlight: number } }> }).images[0]!.parts.inFlight;
        await waitFor(async () => (await inFlight()) >= 12, 30_000, 'reads waiting for their parts');
        await sleep(500); // the rest of the readers reach the kernel
        const t0 = Date.now();
        const zeros = await A.runBuffer('dd', [`if=${image}`, 'bs=4096', 'count=1', `skip=${partOffsets[20]! + 4096 + gap / 2}`, 'iflag=skip_bytes', 'status=none']);
        assert.ok(zeros.equals(Buffer.alloc(4096)), 'template data: 4096 zeros');
        assert.deepEqual(await A.fs.readdir(m.mnt), ['many.img']);
        const ms = Date.now() - t0;
        assert.ok(ms < 3000, `the template read and the listing took ${ms} ms with ${readers.length} reads waiting`);
        await waitFor(async () => (await inFlight()) >= partOffsets.length, 5000, 'every reader\'s part on its way');
        assert.equal(readers.filter((r) => r.exitCode === null).length, readers.length, 'every reader still waits');
      } finally {
        for (const r of readers) r.kill('SIGKILL');
        A.close();
      }
    });
  }
});

describe('answers that never let a request end: an endless redirect body, 1xx answers without end, a silent proxy', () => {
  const slow = /(mirror http:\/\/127\.0\.0\.1:\d+\/parts\/ is not answering: \d+ failures in a row, last: )?no response headers in time$/;

  test('a redirect whose body never ends is followed at once, for a .jigdo and for parts', async () => {
    // undici's interceptor followed a redirect once its body ended: `info` never returned, downloading GBs meanwhile.
    const jigdoWeb = await mirror(path.dirname(v.jigdo));
    jigdoWeb.fault('/endless-redirect.jigdo', { kind: 'redirect', to: `/${path.basename(v.jigdo)}`, endlessBody: true });
    const web = await mirror(fx.tree);
    web.fault((p) => p.startsWith('/via/'), { kind: 'redirect', to: (p) => p.slice('/via'.length), endlessBody: true });
    const d = await dir('endless-redirect');
    assertOk(await runCli(['info', `${jigdoWeb.url}endless-redirect.jigdo`, '--cache-dir', path.join(d, 'cache'), '--timeout', '2', '--retries', '0'], { timeoutMs: 30_000, cwd: d }));
    const jigdo = await jigdoWithServers(v, [`${web.url}via/parts/`], d);
    const out = path.join(d, 'image.iso');
    assertOk(await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'cache'), '--timeout', '2', '--retries', '0'], { timeoutMs: 60_000 }));
    assert.equal(await fileMd5(out), v.imageMd5);
    const sent = [...jigdoWeb.requests, ...web.requests].filter((q) => q.status === 302).reduce((n, q) => n + q.bytes, 0);
    assert.ok(sent < 64 << 20, `${sent} bytes of redirect bodies were sent`);
  });

  test('1xx answers without end: "no response headers in time" within twice --timeout, for a .jigdo and for parts', async () => {
    // Each 103 restarted undici's headers timer: the request waited for good.
    const web = await mirror(fx.tree);
    web.fault('/hints.jigdo', { kind: 'hints', everyMs: 300 });
    web.fault((p) => p.startsWith('/parts/'), { kind: 'hints', everyMs: 300 });
    const d = await dir('hints');
    const r = await runCli(['info', `${web.url}hints.jigdo`, '--cache-dir', path.join(d, 'cache'), '--timeout', '1', '--retries', '0'], { timeoutMs: 30_000, cwd: d });
    assertCleanFailure(r, `${web.url}hints.jigdo`, /no response headers in time$/);
    assert.ok(r.ms < 10_000, `info took ${r.ms} ms`);
    const jigdo = await jigdoWithServers(v, [partsUri(web)], d);
    const out = path.join(d, 'out', 'image.iso');
    await mkdir(path.dirname(out));
    const m = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'cache'), '--timeout', '1', '--retries', '0'], { timeoutMs: 60_000 });
    assertMissingParts(m, out, 6, slow);
    assert.ok(m.ms < 30_000, `make-image took ${m.ms} ms`);
  });

  test('a mirror that sends 100 Continue before every answer: make-image reads past it, the image right', async () => {
    // The fetch threads handed such an answer to undici, which drops the connection on a 100: every part failed.
    const web = await mirror(fx.tree);
    web.fault('*', { kind: 'continue', count: 1 });
    const d = await dir('continue');
    const jigdo = await jigdoWithServers(v, [partsUri(web)], d);
    const out = path.join(d, 'image.iso');
    assertOk(await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'cache'), '--config', rangedConfig, '--timeout', '2', '--retries', '0'], { timeoutMs: 60_000 }));
    assert.equal(await fileMd5(out), v.imageMd5);
    assert.ok(web.requests.filter((q) => q.fault === 'continue').length >= 6, 'the parts came with the interim answer');
  });

  test('a proxy that takes the request and never answers: --timeout holds (it was undici\'s 300 s)', async () => {
    const taken: Socket[] = [];
    const silent = createServer((sock) => {
      taken.push(sock);
      sock.on('error', () => undefined);
      sock.resume(); // reads the request, never answers
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const proxy = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const web = await mirror(path.dirname(v.jigdo));
    const d = await dir('silent-proxy');
    const env = { ...process.env, XDG_CACHE_HOME: d, XDG_CONFIG_HOME: d, JIGDOFS_DEBUG: '', HTTP_PROXY: proxy, http_proxy: proxy, NO_PROXY: '', no_proxy: '' };
    const url = `${web.url}${path.basename(v.jigdo)}`;
    try {
      const r = await runCli(['info', url, '--cache-dir', path.join(d, 'cache'), '--timeout', '1', '--retries', '0'], { timeoutMs: 60_000, env, cwd: d });
      assertCleanFailure(r, url, /no response headers in time$/);
      assert.ok(r.ms < 10_000, `info took ${r.ms} ms`);
      assert.ok(taken.length > 0, 'the request went to the proxy');
      assert.equal(web.requests.length, 0);
    } finally {
      silent.close();
      for (const sock of taken) sock.destroy();
    }
  });
});

describe('redirects that lead nowhere', () => {
  test('a loop, too many, a malformed Location: one plain line naming the URL', async () => {
    const web = await mirror(fx.tree);
    web.fault('/loop.jigdo', { kind: 'redirect', to: '/loop2.jigdo' });
    web.fault('/loop2.jigdo', { kind: 'redirect', to: `${web.url}loop.jigdo`, code: 301 });
    web.fault((p) => p.startsWith('/far'), { kind: 'redirect', to: (p) => `/far${Number(p.slice(4, -6) || 0) + 1}.jigdo` });
    web.fault('/broken.jigdo', { kind: 'redirect', to: 'http://[::1/x' });
    web.fault('/ftp.jigdo', { kind: 'redirect', to: 'ftp://127.0.0.1/x.jigdo' });
    web.fault('/empty.jigdo', { kind: 'redirect', to: '' });
    const d = await dir('redirects');
    const info = (name: string) => runCli(['info', `${web.url}${name}`, '--cache-dir', path.join(d, 'cache'), '--retries', '0'], { timeoutMs: 20_000, cwd: d });
    assertCleanFailure(await info('loop.jigdo'), `${web.url}loop.jigdo`, /: cannot fetch: redirects in a loop: a Location leads back to an address already visited$/);
    assertCleanFailure(await info('far0.jigdo'), `${web.url}far0.jigdo`, /: cannot fetch: HTTP 302: too many redirects \(more than 5; the next one to \/far6\.jigdo\)$/);
    assertCleanFailure(await info('broken.jigdo'), `${web.url}broken.jigdo`, /: cannot fetch: redirected to a malformed address \("http:\/\/\[::1\/x"\)$/);
    assertCleanFailure(await info('ftp.jigdo'), `${web.url}ftp.jigdo`, /: cannot fetch: redirected to an address that is not http\(s\)$/);
    assertCleanFailure(await info('empty.jigdo'), `${web.url}empty.jigdo`, /: cannot fetch: HTTP 302: a redirect without a Location$/);

    // Parts behind a redirect loop: each missing part says so.
    const looping = await mirror(fx.tree);
    looping.fault((p) => p.startsWith('/parts/'), { kind: 'redirect', to: (p) => `/again${p}` });
    looping.fault((p) => p.startsWith('/again/'), { kind: 'redirect', to: (p) => p.slice('/again'.length) });
    const jigdo = await jigdoWithServers(v, [partsUri(looping)], d);
    const out = path.join(d, 'out', 'image.iso');
    await mkdir(path.dirname(out));
    const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'cache'), '--retries', '0'], { timeoutMs: 20_000 });
    assertMissingParts(r, out, 6, /: every mirror failed: http:\/\/127\.0\.0\.1:\d+\/parts\/\S+: redirects in a loop: a Location leads back to an address already visited$/);
  });
});

describe('part paths a URL parser would cut', () => {
  test('a part named with #, a TAB or a lone % is asked for by its whole name, by the fetch threads and by undici', async () => {
    const site = path.join(work, 'odd-names');
    await cp(v.partsDir, site, { recursive: true });
    await rename(path.join(site, 'pool', 'a-3k.bin'), path.join(site, 'pool', 'a#3k.bin'));
    await rename(path.join(site, 'pool', 'b-40k.bin'), path.join(site, 'pool', 'b\t40k.bin'));
    // A % that starts no escape goes as %25, as wget sends it: sent raw, the server (nginx, this mirror) answers 400.
    await rename(path.join(site, 'extra', 'c-200k-copy.bin'), path.join(site, 'extra', 'c 50%off.bin'));
    const web = await startMirror({ root: site });
    mirrors.push(web);
    const jigdo = await jigdoWithServers(v, [web.url], path.join(work, 'odd-names-jigdo'));
    const text = await readFile(jigdo, 'utf8');
    assert.ok(text.includes('=Parts:extra/c-200k-copy.bin'), text);
    await writeFile(
      jigdo,
      text
        .replace('=Parts:pool/a-3k.bin', '="Parts:pool/a#3k.bin"')
        .replace('=Parts:pool/b-40k.bin', '="Parts:pool/b\t40k.bin"')
        .replace('=Parts:extra/c-200k-copy.bin', '="Parts:extra/c 50%off.bin"'),
    );
    for (const threads of ['2', '0']) {
      const out = path.join(work, `odd-names-${threads}.iso`);
      const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(work, `odd-names-cache-${threads}`)], { timeoutMs: 30_000, env: { ...process.env, JIGDOFS_HTTP_THREADS: threads } });
      assert.equal(r.code, 0, describeRun(r));
    }
    const asked = new Set(web.requests.map((q) => q.path));
    assert.ok(asked.has('/pool/a#3k.bin') && asked.has('/pool/b\t40k.bin') && asked.has('/extra/c 50%off.bin'), [...asked].join(', '));
    assert.ok(!asked.has('/pool/a') && !asked.has('/pool/b40k.bin'));
  });
});
