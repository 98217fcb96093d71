/**
 * A remote .jigdo (gzipped, by URL) with its template fetched, verified and cached; [Include URL]; --offline;
 * --mirror and config-file mirrors; redirects; HTTP_PROXY / NO_PROXY.
 * (Split from network.test.ts by concern; the shared setup is test/helpers/network-suite.ts.)
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdir, open as openFile, readFile, rm, stat, statfs, utimes, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { checksumKey, hexOfKey } from '../../src/format/checksum.js';
import { makeImage } from '../../src/build/make-image.js';
import { ownerTag } from '../../src/util/pid.js';
import { BIN, runCli } from '../helpers/cli.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { assertCacheVerified, cacheLeftovers, fileMd5, gets, jigdoWithServers, missingPartLines, partsUri, waitFor } from '../helpers/network.js';
import { fx, v, plainConfig, mirrors, mirror, dir, open, setupNetworkSuite } from '../helpers/network-suite.js';

setupNetworkSuite();

const execFileAsync = promisify(execFile);

/** The name of the template's resume file in the cache's `parts/tmp` (temp-files.ts openResumeFile) for a .jigdo's text, without its owner. */
function resumeName(jigdoText: string): string {
  const sum = /^Template-MD5Sum=(\S+)$/m.exec(jigdoText)![1]!;
  return `resume-templates-md5-${hexOfKey(sum)}`;
}

/** The resume file of `site`'s .jigdo in `cache` (whatever process it is named after), if there is one. */
async function resumeFileIn(cache: string, site: string): Promise<string | undefined> {
  const prefix = `${resumeName(await readFile(path.join(site, 'img.jigdo'), 'utf8'))}.`;
  const found = (await cacheLeftovers(cache)).tmp.filter((f) => f.startsWith(prefix));
  assert.ok(found.length <= 1, found.join(' '));
  return found[0] && path.join(cache, 'parts', 'tmp', found[0]);
}

/** An owner tag of this host whose process cannot exist (a pid past the kernel's highest, so never reused): a dead one. */
let deadPid = 4_194_305;
const deadOwner = (): string => ownerTag(deadPid++);

/** A folder `name` holding a copy of the sample .jigdo as `jigdoName` (no mirrors) and its template, served by a test mirror. */
async function servedJigdo(name: string, jigdoName: string): Promise<{ d: string; site: string; web: Awaited<ReturnType<typeof startMirror>> }> {
  const d = await dir(name);
  const site = path.join(d, 'site');
  await jigdoWithServers(v, [], site, jigdoName);
  const web = await startMirror({ root: site });
  mirrors.push(web);
  return { d, site, web };
}

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
    assert.equal((await assertCacheVerified(cache)).length, 1, 'the template stays; the parts the run downloaded are removed');

    // The cache is content-addressed: a .jigdo naming the same template checksum at another URL needs no
    // download at all.
    const same = await runCli(['info', `${web.url}wrong.jigdo`, '--cache-dir', cache, '--config', plainConfig], { timeoutMs: 30_000, cwd });
    assert.equal(same.code, 0, same.stderr);
    assert.equal(gets(web, '/other.template').length, 0);
    // With an empty cache the other template is fetched, and does not match: one clear line, nothing
    // cached under a checksum name.
    const cache2 = path.join(d, 'cache2');
    const bad = await runCli(['missing', `${web.url}wrong.jigdo`, '--cache-dir', cache2, '--config', plainConfig], { timeoutMs: 30_000, cwd });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^jigdofs: http:\/\/127\.0\.0\.1:\d+\/other\.template: downloaded template does not match/);
    assert.equal(bad.stderr.trim().split('\n').length, 1);
    assert.equal((await assertCacheVerified(cache2)).length, 0);
    assert.deepEqual(await cacheLeftovers(cache2), { tmp: [], locks: [] });
  });

  test("a template matching only the .jigdo's MD5 is not cached under the SHA-256 the .jigdo also gives", async () => {
    const d = await dir('two-sums');
    const site = path.join(d, 'site');
    const local = await jigdoWithServers(v, [], site);
    const other = fx.variants['jf-sha256-gzip'];
    const otherSha = checksumKey(createHash('sha256').update(await readFile(other.template)).digest());
    // The MD5 is this template's; the SHA-256 is another template's (a .jigdo whose two sums disagree).
    await writeFile(path.join(site, 'both.jigdo'), (await readFile(local, 'utf8')).replace(/^(Template-MD5Sum=.*)$/m, `$1\nTemplate-SHA256Sum=${otherSha}`));
    await writeFile(path.join(site, 'other.jigdo'), (await readFile(other.jigdo, 'utf8')).replace(/^Template=.*$/m, 'Template=other.template'));
    await writeFile(path.join(site, 'other.template'), await readFile(other.template));
    const web = await startMirror({ root: site });
    mirrors.push(web);
    const cache = path.join(d, 'cache');
    const bad = await runCli(['missing', `${web.url}both.jigdo`, '--cache-dir', cache, '--config', plainConfig], { timeoutMs: 30_000 });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /downloaded template does not match the \.jigdo's Template-SHA256Sum/);
    assert.equal((await assertCacheVerified(cache)).length, 0, 'nothing cached under a name it does not have');
    // The template that has that SHA-256 is then fetched and used, not the other one found under its name.
    const good = await runCli(['info', `${web.url}other.jigdo`, '--cache-dir', cache, '--config', plainConfig], { timeoutMs: 30_000 });
    assert.equal(good.code, 0, good.stderr);
    assert.equal((await assertCacheVerified(cache)).length, 1);
  });

  test('a .jigdo that trickles in (a byte now and then, never silent for long) fails as too slow, not never', async () => {
    const { d, web } = await servedJigdo('trickle', 'slow.jigdo');
    web.fault('/slow.jigdo', { kind: 'trickle', afterBytes: 10, everyMs: 700 });
    const r = await runCli(['info', `${web.url}slow.jigdo`, '--cache-dir', path.join(d, 'cache'), '--config', plainConfig, '--timeout', '2', '--retries', '0'], { timeoutMs: 30_000 });
    assert.equal(r.timedOut, false, 'the command ended');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^jigdofs: http:\/\/127\.0\.0\.1:\d+\/slow\.jigdo: cannot fetch: too slow: /);
  });

  test('a template server that cuts every answer after a few bytes fails as too slow, in bounded time', async () => {
    const { d, web } = await servedJigdo('cut-short', 'img.jigdo');
    const name = `/${path.basename(v.template)}`;
    // Every answer: 16 bytes after 200 ms, then the connection closes (each request gets further than the last).
    web.fault(name, { kind: 'short', bytes: 16 });
    web.latencyMs = 200;
    const r = await runCli(['missing', `${web.url}img.jigdo`, '--cache-dir', path.join(d, 'cache'), '--config', plainConfig, '--timeout', '1', '--retries', '1'], { timeoutMs: 60_000 });
    assert.equal(r.timedOut, false, 'the command ended (the 74 KB template at 16 bytes a request: 15 minutes)');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^jigdofs: http:\/\/127\.0\.0\.1:\d+\/jf-md5-gzip\.template: cannot fetch: too slow: \d+ bytes in \d+ s, over requests each cut short/m);
    assert.ok(gets(web, name).length <= 20, `${gets(web, name).length} requests`);
  });

  test('the waits after failed attempts do not count against the pace of the next one, which got further', async () => {
    const { d, web } = await servedJigdo('pace-after-waits', 'img.jigdo');
    const name = `/${path.basename(v.template)}`;
    web.fault(name, { kind: 'reset', afterBytes: 0, times: 3 }); // three cuts before any byte: waits of 0.5, 1.5 and 4.5 s
    web.fault((p) => p === name, { kind: 'reset', afterBytes: 2000, times: 1 }); // then one that gets 2,000 bytes at once
    const r = await runCli(['info', `${web.url}img.jigdo`, '--cache-dir', path.join(d, 'cache'), '--config', plainConfig, '--timeout', '2', '--retries', '3'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(gets(web, name).length, 5);
  });

  test('a template server that never answers fails with its own reason, not as too slow', async () => {
    const { d, web } = await servedJigdo('never-answers', 'img.jigdo');
    web.fault(`/${path.basename(v.template)}`, { kind: 'hang' });
    const r = await runCli(['missing', `${web.url}img.jigdo`, '--cache-dir', path.join(d, 'cache'), '--config', plainConfig, '--timeout', '1', '--retries', '2'], { timeoutMs: 60_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^jigdofs: http:\/\/127\.0\.0\.1:\d+\/jf-md5-gzip\.template: cannot fetch: no response headers in time$/m);
  });

  test("a stale copy of a remote template in the current folder (another build's, same name) is passed over for the download", async () => {
    const { d, web } = await servedJigdo('stale-copy', 'img.jigdo');
    const cwd = await dir('stale-copy-cwd');
    const copy = path.join(cwd, path.basename(v.template));
    await writeFile(copy, await readFile(fx.variants['jf-sha256-gzip'].template)); // last week's template, say
    const r = await runCli(['info', `${web.url}img.jigdo`, '--cache-dir', path.join(d, 'cache'), '--config', plainConfig], { timeoutMs: 30_000, cwd });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stderr.includes(`${copy}: not the template the .jigdo names (another checksum): using ${web.url}${path.basename(v.template)} instead`), r.stderr);
    assert.equal(gets(web, `/${path.basename(v.template)}`).length, 1);
  });

  test('offline, a copy beside a local .jigdo that fails its checksum is named for that, not passed over for a download', async () => {
    const d = await dir('offline-copy');
    const local = await jigdoWithServers(v, [], d, 'img.jigdo');
    const name = path.basename(v.template);
    await writeFile(local, (await readFile(local, 'utf8')).replace(/^Template=.*$/m, `Template=http://127.0.0.1:9/${name}`));
    await writeFile(path.join(d, name), await readFile(fx.variants['jf-sha256-gzip'].template)); // another build's
    const r = await runCli(['info', local, '--cache-dir', path.join(d, 'cache'), '--config', plainConfig, '--offline'], { timeoutMs: 30_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^jigdofs: ${path.join(d, name).replace(/[.]/g, '\\.')}: template MD5 checksum does not match the \\.jigdo`));
    assert.doesNotMatch(r.stderr, /instead/);
  });

  test('a cached template damaged on the disk since is removed and fetched again, not a failure on every run', async () => {
    const { d, web } = await servedJigdo('damaged-template', 'img.jigdo');
    const cache = path.join(d, 'cache');
    const info = () => runCli(['info', `${web.url}img.jigdo`, '--cache-dir', cache, '--config', plainConfig], { timeoutMs: 30_000 });
    assert.equal((await info()).code, 0);
    const [cached] = await assertCacheVerified(cache);
    const before = await stat(cached!.file);
    const fh = await openFile(cached!.file, 'r+');
    await fh.write(Buffer.from('XX'), 0, 2, 100); // same size, other bytes
    await fh.close();
    // Bit rot, not an edit: the mtime as it was (an edit's own mtime has it removed at its lookup: commit-stamp.ts).
    await utimes(cached!.file, before.atime, before.mtime);
    const again = await info();
    assert.equal(again.code, 0, again.stderr);
    assert.ok(again.stderr.includes(`${cached!.file}: the cached template no longer has its checksum: removed, fetching it again`), again.stderr);
    assert.equal(gets(web, `/${path.basename(v.template)}`).length, 2);
    assert.equal((await assertCacheVerified(cache)).length, 1);
  });

  test('a template replaced on the server while it downloads is not stitched from both versions (If-Range)', async () => {
    const d = await dir('replaced-template');
    const site = path.join(d, 'site');
    await jigdoWithServers(v, [], site, 'img.jigdo'); // names the template that is served in the end
    const name = `/${path.basename(v.template)}`;
    const served = path.join(site, name);
    const now = await readFile(served);
    const before = Buffer.from(now);
    for (let i = 100; i < 140; i++) before[i]! ^= 0xff; // the build the server had first: other bytes early on
    writeFileSync(served, before);
    utimesSync(served, 1_700_000_000, 1_700_000_000);
    let replaced = false;
    const web = await startMirror({
      root: site,
      // The first answer is cut halfway; the new build is in place before the client asks for the rest.
      onResponse: (r) => {
        if (replaced || r.path !== name) return;
        replaced = true;
        writeFileSync(served, now);
        utimesSync(served, 1_700_000_100, 1_700_000_100);
      },
    });
    mirrors.push(web);
    web.fault(name, { kind: 'reset', afterBytes: Math.floor(now.length / 2), times: 1 });
    const r = await runCli(['info', `${web.url}img.jigdo`, '--cache-dir', path.join(d, 'cache'), '--config', plainConfig], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const asked = gets(web, name);
    assert.equal(asked.length, 2, 'cut once, then asked again');
    assert.match(asked[1]!.range ?? '', /^bytes=\d+-$/, 'the second request resumes');
    assert.equal(asked[1]!.status, 200, 'the changed file comes whole');
    assert.equal((await assertCacheVerified(path.join(d, 'cache'))).length, 1);
  });

  test('a replaced template whose new version comes without a Content-Length is taken whole, not cut at the old size', async () => {
    const d = await dir('replaced-chunked');
    const local = await jigdoWithServers(v, [], d, 'img.jigdo'); // names the template as it is now
    const now = await readFile(v.template);
    const first = now.subarray(0, now.length - 500); // the server's earlier build: shorter
    const asked: Array<string | undefined> = [];
    const server: Server = createHttpServer((req, res) => {
      asked.push(req.headers['if-range'] as string | undefined);
      if (asked.length === 1) {
        res.writeHead(200, { 'content-length': String(first.length), etag: '"v1"' });
        res.write(first.subarray(0, 1000), () => res.destroy()); // cut
      } else {
        res.writeHead(200, { etag: '"v2"' }); // If-Range "v1" no longer holds: the whole new file, chunked
        res.end(now);
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      await writeFile(local, (await readFile(local, 'utf8')).replace(/^Template=.*$/m, `Template=http://127.0.0.1:${port}/t.template`));
      const r = await runCli(['info', local, '--cache-dir', path.join(d, 'cache'), '--config', plainConfig], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(asked, [undefined, '"v1"']);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
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

    const on = await runCli(['make-image', base, '-o', path.join(d, 'on.iso'), '--cache-dir', cache, '--config', plainConfig, '--keep-parts'], { timeoutMs: 30_000 });
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

    // Without its trailing '/', as users write a mirror: given one, as jigdo-lite does (the old code asked for …/partspool/…).
    const goodBare = partsUri(good).replace(/\/$/, '');
    const r = await runCli(['make-image', jigdo, '-o', path.join(d, 'a.iso'), '--cache-dir', path.join(d, 'c1'), '--config', plainConfig, '--mirror', `Parts=${goodBare}`], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fileMd5(path.join(d, 'a.iso')), v.imageMd5);
    assert.equal(listed.requests.length, 0, "the .jigdo's own server was not needed");
    // `missing` lists the user's mirror first too (the old code listed the .jigdo's own servers only).
    const missing = await runCli(['missing', jigdo, '--cache-dir', path.join(d, 'c0'), '--config', plainConfig, '--mirror', `Parts=${goodBare}`, '--first'], { timeoutMs: 30_000 });
    assert.equal(missing.code, 0, missing.stderr);
    const firsts = missing.stdout.trim().split('\n');
    assert.ok(firsts.length > 0 && firsts.every((u) => u.startsWith(partsUri(good))), missing.stdout);

    const xdg = path.join(d, 'xdg');
    await mkdir(path.join(xdg, 'jigdofs'), { recursive: true });
    await writeFile(path.join(xdg, 'jigdofs', 'config.ini'), `[mirrors]\nParts = ${goodBare}\n[cache]\nsize = 1G\n`);
    const env = { ...process.env, XDG_CONFIG_HOME: xdg };
    const c = await runCli(['make-image', jigdo, '-o', path.join(d, 'b.iso'), '--cache-dir', path.join(d, 'c2')], { timeoutMs: 30_000, env });
    assert.equal(c.code, 0, c.stderr);
    assert.equal(await fileMd5(path.join(d, 'b.iso')), v.imageMd5);
    assert.equal(listed.requests.length, 0);

    await writeFile(path.join(xdg, 'jigdofs', 'config.ini'), '[network]\ntimeout = soon\n');
    const bad = await runCli(['info', jigdo, '--cache-dir', path.join(d, 'c2')], { timeoutMs: 30_000, env });
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.trim(), `jigdofs: ${path.join(xdg, 'jigdofs', 'config.ini')}: [network] timeout = "soon": expected seconds, at least 0.001 and at most 3600`);
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

      // host:port without a scheme, as curl, wget and apt take it (undici took the host for a scheme).
      const env3 = { ...process.env, HTTP_PROXY: proxyUrl.replace('http://', ''), NO_PROXY: '' };
      const r3 = await runCli(['make-image', jigdo, '-o', path.join(d, 'r.iso'), '--cache-dir', path.join(d, 'c3'), '--config', plainConfig], { timeoutMs: 30_000, env: env3 });
      assert.equal(r3.code, 0, r3.stderr);
      assert.ok(tunnels + forwarded > seen, 'requests went through the proxy');
      const badEnv = { ...process.env, HTTP_PROXY: 'http://user:secret@[oops', NO_PROXY: '' };
      const bad = await runCli(['make-image', jigdo, '-o', path.join(d, 's.iso'), '--cache-dir', path.join(d, 'c4'), '--config', plainConfig], { timeoutMs: 30_000, env: badEnv });
      assert.equal(bad.code, 1);
      assert.ok(bad.stderr.includes('HTTP_PROXY="http://***@[oops" is not a proxy address (expected host:port or http://host:port)'), bad.stderr);
      assert.doesNotMatch(bad.stderr, /secret/);
      // A proxy that is not there is named as the one that failed, not the mirror (which never saw a request).
      const asked = m.requests.length;
      const deadEnv = { ...process.env, HTTP_PROXY: 'http://user:secret@127.0.0.1:9', NO_PROXY: '' };
      const dead = await runCli(['make-image', jigdo, '-o', path.join(d, 't.iso'), '--cache-dir', path.join(d, 'c6'), '--config', plainConfig, '--retries', '0'], { timeoutMs: 30_000, env: deadEnv });
      assert.equal(dead.code, 1);
      assert.match(dead.stderr, /: every mirror failed: http:\/\/127\.0\.0\.1:\d+\/\S+: cannot connect to the proxy http:\/\/\*\*\*@127\.0\.0\.1:9 \(ECONNREFUSED\)$/m);
      assert.doesNotMatch(dead.stderr, /secret|cannot connect \(ECONNREFUSED\)/);
      assert.equal(m.requests.length, asked);
      // A command that fetches nothing does not care: the parts are local.
      const local = await runCli(['missing', jigdo, '--local', `Parts=${fx.partsDir}`, '--cache-dir', path.join(d, 'c5'), '--config', plainConfig], { timeoutMs: 30_000, env: badEnv });
      assert.equal(local.code, 0, local.stderr);
    } finally {
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    }
  });
  for (const [sig, summed] of [['SIGINT', true], ['SIGTERM', false]] as const) {
    test(`${sig} while the template downloads (before any command handles signals; ${summed ? 'a checksum' : 'no checksum'} for it in the .jigdo): one line, death by the signal, nothing left in the cache${summed ? ' but the bytes to resume from' : ''}`, async () => {
      const { d, site, web } = await servedJigdo(`template-${sig}`, 'img.jigdo');
      // Without a Template-MD5Sum the template goes to a temporary file of its own (TemplateDownloads.fetchUnverified).
      if (!summed) await writeFile(path.join(site, 'img.jigdo'), (await readFile(path.join(site, 'img.jigdo'), 'utf8')).replace(/^Template-MD5Sum=.*\n/m, ''));
      // With a checksum, a byte every 20 ms after the first 20,000: the bytes that came are written (every 500 ms).
      web.fault('/jf-md5-gzip.template', summed ? { kind: 'trickle', afterBytes: 20_000, everyMs: 20 } : { kind: 'stall', afterBytes: 20_000 });
      const cache = path.join(d, 'cache');
      const child = spawn(process.execPath, [BIN, 'make-image', `${web.url}img.jigdo`, '-o', path.join(d, 'out.iso'), '--cache-dir', cache, '--config', plainConfig, '--timeout', '60'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('close', (code, signal) => r({ code, signal })));
      try {
        await waitFor(() => gets(web, '/jf-md5-gzip.template').some((r) => r.bytes >= 20_000), 20_000, 'the stalled template');
        if (summed) await waitFor(async () => ((await stat((await resumeFileIn(cache, site)) ?? '-').catch(() => undefined))?.size ?? 0) >= 20_000, 5_000, 'its bytes on the disk');
        else await waitFor(async () => (await cacheLeftovers(cache)).tmp.some((f) => f.endsWith('.partial')), 5_000, 'its temporary file');
        child.kill(sig);
        assert.deepEqual(await exited, { code: null, signal: sig }, stderr);
      } finally {
        child.kill('SIGKILL');
      }
      assert.match(stderr, new RegExp(`^jigdofs: interrupted \\(${sig}\\)$`, 'm'));
      // On the old code: the template's .partial, its lock and the lock inode stayed until the next run. A template the
      // .jigdo gives a checksum for keeps what came of it under that checksum's name, for the next run to go on from.
      const resume = summed ? await resumeFileIn(cache, site) : undefined;
      assert.deepEqual(await cacheLeftovers(cache), { tmp: resume ? [path.basename(resume)] : [], locks: [] });
      if (summed) assert.ok((await stat(resume!)).size >= 20_000);
    });
  }

  describe('a template download cut short goes on in the next run from the byte it stopped at', () => {
    /** A make-image of the sample's .jigdo served by `web` (its parts from the sample's folder) into `d`, with the cache `d/cache`. */
    const makeImageOf = (d: string, web: Mirror, out: string, extra: string[] = []): ReturnType<typeof runCli> =>
      runCli(['make-image', `${web.url}img.jigdo`, '-o', path.join(d, out), '--scan', v.partsDir, '--cache-dir', path.join(d, 'cache'), '--config', plainConfig, ...extra], { timeoutMs: 60_000 });
    /** The template's resume file in `d`'s cache, written as `bytes`, as a process of this host that no longer runs left it. */
    async function leaveResumeFile(d: string, site: string, bytes: Buffer, owner = deadOwner()): Promise<string> {
      const tmp = path.join(d, 'cache', 'parts', 'tmp');
      await mkdir(tmp, { recursive: true });
      const file = path.join(tmp, `${resumeName(await readFile(path.join(site, 'img.jigdo'), 'utf8'))}.${owner}`);
      await writeFile(file, bytes);
      return file;
    }

    test('after a SIGKILL: the rest is asked for with a Range, the image is right, nothing is left', async () => {
      const { d, site, web } = await servedJigdo('template-resume-kill', 'img.jigdo');
      const template = await readFile(path.join(site, 'jf-md5-gzip.template'));
      web.fault('/jf-md5-gzip.template', { kind: 'trickle', afterBytes: 30_000, everyMs: 20, times: 1 });
      const cache = path.join(d, 'cache');
      const child = spawn(process.execPath, [BIN, 'make-image', `${web.url}img.jigdo`, '-o', path.join(d, 'first.iso'), '--cache-dir', cache, '--config', plainConfig, '--timeout', '60'], { stdio: 'ignore' });
      const exited = new Promise((r) => child.once('close', r));
      try {
        await waitFor(async () => ((await stat((await resumeFileIn(cache, site)) ?? '-').catch(() => undefined))?.size ?? 0) >= 30_000, 20_000, 'the first bytes on the disk');
      } finally {
        child.kill('SIGKILL');
        await exited;
      }
      const resume = (await resumeFileIn(cache, site))!;
      assert.ok(resume.endsWith(`.${ownerTag(child.pid)}`), `named after the process that wrote it: ${resume}`);
      const had = (await stat(resume)).size;
      const r = await makeImageOf(d, web, 'out.iso');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await fileMd5(path.join(d, 'out.iso')), v.imageMd5);
      const asked = gets(web, '/jf-md5-gzip.template');
      assert.equal(asked.length, 2, 'one request per run');
      assert.equal(asked[1]!.range, `bytes=${had}-`, 'the second run asked for the rest alone (on the code before: the whole template again)');
      assert.equal(asked[1]!.bytes, template.length - had);
      assert.deepEqual(await cacheLeftovers(cache), { tmp: [], locks: [] });
      assert.equal((await assertCacheVerified(cache)).length, 1, 'the template, under its checksum name');
    });

    test('bytes left that make a wrong template with the rest are dropped, and the template is downloaded whole; so are bytes past its end, and bytes that are no template', async () => {
      const { d, site, web } = await servedJigdo('template-resume-wrong', 'img.jigdo');
      const template = await readFile(path.join(site, 'jf-md5-gzip.template'));
      const cases: Array<{ what: string; bytes: Buffer; ranges: Array<string | undefined>; retries?: number }> = [
        // The right start of the file, then bytes of another version: the whole does not match.
        { what: 'another version', bytes: Buffer.concat([template.subarray(0, 20_000), Buffer.alloc(10_000, 0x55)]), ranges: ['bytes=30000-', undefined] },
        // Longer than the template there: 416, then from byte 0 at once.
        { what: 'past its end', bytes: Buffer.concat([template, Buffer.alloc(100, 1)]), ranges: [`bytes=${template.length + 100}-`, undefined], retries: 0 },
        // Not how a template starts: not asked for from there at all.
        { what: 'no template', bytes: Buffer.alloc(5_000, 0x41), ranges: [undefined] },
      ];
      for (const [i, c] of cases.entries()) {
        web.reset();
        await rm(path.join(d, 'cache'), { recursive: true, force: true });
        await leaveResumeFile(d, site, c.bytes);
        const r = await makeImageOf(d, web, `out-${i}.iso`, c.retries === undefined ? [] : ['--retries', String(c.retries)]);
        assert.equal(r.code, 0, `${c.what}: ${r.stderr}`);
        assert.equal(await fileMd5(path.join(d, `out-${i}.iso`)), v.imageMd5, c.what);
        assert.deepEqual(gets(web, '/jf-md5-gzip.template').map((g) => g.range), c.ranges, c.what);
        if (c.what === 'another version') {
          assert.match(r.stderr, /the template resumed from byte 30000 does not match its checksum: downloading it whole/);
          // Past caches at once: the bytes kept may be of a no-cache download cut short, whose rest a proxy's stale copy gave.
          assert.deepEqual(gets(web, '/jf-md5-gzip.template').map((g) => g.cacheControl), [undefined, 'no-cache'], 'the whole asked past caches');
        }
        assert.deepEqual(await cacheLeftovers(path.join(d, 'cache')), { tmp: [], locks: [] }, c.what);
      }
    });

    test('a server whose answers to a Range do not state the size (`bytes 30000-49999/*`) is asked for the rest until its 416', async () => {
      const { d, site, web } = await servedJigdo('template-resume-unsized', 'img.jigdo');
      const template = await readFile(path.join(site, 'jf-md5-gzip.template'));
      await leaveResumeFile(d, site, template.subarray(0, 30_000));
      web.fault('/jf-md5-gzip.template', { kind: 'unsized', bytes: 20_000 });
      const r = await makeImageOf(d, web, 'out.iso');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await fileMd5(path.join(d, 'out.iso')), v.imageMd5);
      const asked = gets(web, '/jf-md5-gzip.template');
      const starts = asked.map((a) => a.range);
      const want = [];
      for (let at = 30_000; at < template.length; at += 20_000) want.push(`bytes=${at}-`);
      want.push(`bytes=${template.length}-`);
      assert.deepEqual(starts, want, 'each answer goes on from where the last ended (on the code before: one, then the template refused as not matching)');
      assert.equal(asked.at(-1)!.status, 416);
      assert.deepEqual(await cacheLeftovers(path.join(d, 'cache')), { tmp: [], locks: [] });
      assert.equal((await assertCacheVerified(path.join(d, 'cache'))).length, 1, 'the template, under its checksum name');
    });

    test('a server whose answers to a Range without the size hold a few bytes each fails as too slow, in bounded time', async () => {
      const { d, site, web } = await servedJigdo('template-resume-unsized-trickle', 'img.jigdo');
      const template = await readFile(path.join(site, 'jf-md5-gzip.template'));
      await leaveResumeFile(d, site, template.subarray(0, 1000));
      web.fault('/jf-md5-gzip.template', { kind: 'unsized', bytes: 16 });
      web.latencyMs = 200;
      const r = await runCli(['missing', `${web.url}img.jigdo`, '--cache-dir', path.join(d, 'cache'), '--config', plainConfig, '--timeout', '1', '--retries', '1'], { timeoutMs: 60_000 });
      assert.equal(r.timedOut, false, 'the command ended');
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^jigdofs: http:\/\/127\.0\.0\.1:\d+\/jf-md5-gzip\.template: cannot fetch: too slow: \d+ bytes in \d+ s, over requests each cut short \(the last: HTTP 206 up to byte \d+ without the file's size\)/m);
      assert.ok(gets(web, '/jf-md5-gzip.template').length <= 20, `${gets(web, '/jf-md5-gzip.template').length} requests`);
    });

    test('a server that ignores Range sends the whole template at once; a page instead of the template keeps the bytes left for the next run', async () => {
      const { d, site, web } = await servedJigdo('template-resume-norange', 'img.jigdo');
      const template = await readFile(path.join(site, 'jf-md5-gzip.template'));
      const server = createHttpServer((req, res) => {
        if (req.url === '/img.jigdo') return void res.end(readFileSync(path.join(site, 'img.jigdo')));
        if (req.url !== '/jf-md5-gzip.template') return void res.writeHead(404).end();
        res.writeHead(200, { 'content-length': template.length }).end(template); // Range or not
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      try {
        await leaveResumeFile(d, site, template.subarray(0, 25_000));
        // --retries 0: the answer that ignored Range counts as no failure of the mirror (the rest alone was not to be had).
        const r = await runCli(['make-image', `${url}img.jigdo`, '-o', path.join(d, 'out.iso'), '--scan', v.partsDir, '--cache-dir', path.join(d, 'cache'), '--config', plainConfig, '--retries', '0'], { timeoutMs: 60_000 });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await fileMd5(path.join(d, 'out.iso')), v.imageMd5);
      } finally {
        server.closeAllConnections();
        server.close();
      }
      // A page (what a captive portal sends) is refused as no template; it says nothing of the bytes from before it,
      // which stay for the run after it (once the portal lets the requests through).
      web.fault('/jf-md5-gzip.template', { kind: 'page', times: 2 });
      const cache = path.join(d, 'cache');
      await rm(cache, { recursive: true, force: true });
      await leaveResumeFile(d, site, template.subarray(0, 25_000));
      const page = await makeImageOf(d, web, 'page.iso', ['--retries', '0']);
      assert.equal(page.code, 1);
      assert.match(page.stderr, /not a jigdo template/);
      const kept = (await resumeFileIn(cache, site))!;
      assert.deepEqual(await readFile(kept), template.subarray(0, 25_000), 'kept as it was');
      web.reset();
      const after = await makeImageOf(d, web, 'after.iso');
      assert.equal(after.code, 0, after.stderr);
      assert.equal(await fileMd5(path.join(d, 'after.iso')), v.imageMd5);
      assert.deepEqual(gets(web, '/jf-md5-gzip.template').map((g) => g.range), ['bytes=25000-']);
      assert.deepEqual(await cacheLeftovers(cache), { tmp: [], locks: [] });
    });

    test('the file of a writer still alive is never written by another (a lock taken over from a stopped process): its bytes are copied, and the cached template stays right whatever that writer does next', async () => {
      const { d, site, web } = await servedJigdo('template-resume-takeover', 'img.jigdo');
      const template = await readFile(path.join(site, 'jf-md5-gzip.template'));
      const cache = path.join(d, 'cache');
      const name = resumeName(await readFile(path.join(site, 'img.jigdo'), 'utf8'));
      // This process plays the writer that was stopped (Ctrl-Z) for longer than a lock stays fresh: its lock is stale by
      // its age, and it holds its file open. (Under this name and the one versions before gave every writer, unnamed.)
      const lock = path.join(cache, 'parts', 'locks', `${name.slice('resume-'.length)}.lock`);
      await mkdir(path.dirname(lock), { recursive: true });
      await writeFile(lock, `${ownerTag()}-${Date.now()}\n`);
      const old = new Date(Date.now() - 60_000);
      await utimes(lock, old, old);
      const files = [await leaveResumeFile(d, site, template.subarray(0, 25_000), ownerTag()), path.join(cache, 'parts', 'tmp', name)];
      await writeFile(files[1]!, template.subarray(0, 25_000));
      const modeBefore = (await stat(files[0]!)).mode;
      const handles = await Promise.all(files.map((f) => openFile(f, 'r+')));
      try {
        const r = await makeImageOf(d, web, 'out.iso');
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await fileMd5(path.join(d, 'out.iso')), v.imageMd5);
        assert.deepEqual(gets(web, '/jf-md5-gzip.template').map((g) => g.range), ['bytes=25000-'], 'resumed, in a file of its own');
        // The stopped writer goes on: it truncates its file and writes into it.
        for (const fh of handles) {
          await fh.truncate(0);
          await fh.write(Buffer.from('the stopped writer goes on'), 0, undefined, 0);
        }
        // On the code before, the cached template was the file the stopped writer had open: now 26 bytes.
        assert.equal((await assertCacheVerified(cache)).length, 1);
        assert.ok(existsSync(files[0]!), 'the live writer\'s file is left to it');
        assert.equal((await stat(files[0]!)).mode, modeBefore, 'as it was');
      } finally {
        await Promise.all(handles.map((fh) => fh.close()));
      }
    });

    test('on a nearly full disk, the bytes left count as room: a template that fits with them is resumed, not refused as too large and dropped', async () => {
      const { d, site, web } = await servedJigdo('template-resume-full-disk', 'img.jigdo');
      const template = await readFile(path.join(site, 'jf-md5-gzip.template'));
      const had = template.length - 20_000;
      // A file system for the cache that holds the template with a few pages to spare, and keeps 5 % of itself free
      // (cache-eviction.ts freeSpaceCap): with the bytes left on it, the free space is less than the template.
      const size = Math.ceil((template.length + 24_576) / 0.95 / 4096) * 4096;
      const cache = path.join(d, 'cache');
      await mkdir(cache);
      await execFileAsync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', cache]);
      try {
        await leaveResumeFile(d, site, template.subarray(0, had));
        const { bavail, bsize } = await statfs(cache);
        assert.ok(bavail * bsize - size * 0.05 < template.length, 'the free space alone would not hold the template');
        const r = await makeImageOf(d, web, 'out.iso', ['--retries', '0']);
        assert.equal(r.code, 0, `on the code before: refused as larger than the cache's limit: ${r.stderr}`);
        assert.equal(await fileMd5(path.join(d, 'out.iso')), v.imageMd5);
        assert.deepEqual(gets(web, '/jf-md5-gzip.template').map((g) => g.range), [`bytes=${had}-`]);
        assert.equal((await assertCacheVerified(cache)).length, 1);
      } finally {
        await execFileAsync('umount', ['-l', cache]).catch(() => undefined);
      }
    });

    test('a file whose writer cannot be judged (from before a reboot, another container: another host tag) is copied and resumed from, and left to the cleanup', async () => {
      const { d, site, web } = await servedJigdo('template-resume-foreign', 'img.jigdo');
      const template = await readFile(path.join(site, 'jf-md5-gzip.template'));
      const foreign = await leaveResumeFile(d, site, template.subarray(0, 25_000), deadOwner().replace(/^[0-9a-f]{8}/, (h) => (h === '00000000' ? '11111111' : '00000000')));
      const r = await makeImageOf(d, web, 'out.iso');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await fileMd5(path.join(d, 'out.iso')), v.imageMd5);
      assert.deepEqual(gets(web, '/jf-md5-gzip.template').map((g) => g.range), ['bytes=25000-'], 'on db88392: the whole template again');
      assert.deepEqual((await cacheLeftovers(path.join(d, 'cache'))).tmp, [path.basename(foreign)]);
      assert.equal((await assertCacheVerified(path.join(d, 'cache'))).length, 1);
    });

    test('bytes resumed, then cut, then sent whole from byte 0, of a wrong template: downloaded whole once, not twice, and nothing past the new bytes is kept', async () => {
      const { d, site } = await servedJigdo('template-resume-cut-whole', 'img.jigdo');
      const template = await readFile(path.join(site, 'jf-md5-gzip.template'));
      const wrong = Buffer.from(template);
      wrong[wrong.length - 100]! ^= 0xff;
      const asked: Array<string | undefined> = [];
      const fresh: Array<string | string[] | undefined> = [];
      // The first answer resumes (206) and is cut after 5,000 bytes; every one after it ignores Range (200, whole).
      const server = createHttpServer((req, res) => {
        if (req.url === '/img.jigdo') return void res.end(readFileSync(path.join(site, 'img.jigdo')));
        if (req.url !== '/jf-md5-gzip.template') return void res.writeHead(404).end();
        asked.push(req.headers.range);
        fresh.push(req.headers['cache-control']);
        if (asked.length > 1 || !req.headers.range) return void res.writeHead(200, { 'content-length': wrong.length }).end(wrong);
        const start = Number(/bytes=(\d+)-/.exec(req.headers.range)![1]);
        res.writeHead(206, { 'content-range': `bytes ${start}-${wrong.length - 1}/${wrong.length}`, 'content-length': wrong.length - start });
        res.write(wrong.subarray(start, start + 5000), () => setTimeout(() => res.destroy(), 50));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      try {
        await leaveResumeFile(d, site, template.subarray(0, 25_000));
        const r = await runCli(['make-image', `${url}img.jigdo`, '-o', path.join(d, 'out.iso'), '--scan', v.partsDir, '--cache-dir', path.join(d, 'cache'), '--config', plainConfig], { timeoutMs: 60_000 });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /downloaded template does not match the \.jigdo's Template-MD5Sum/);
        assert.doesNotMatch(r.stderr, /resumed from byte/, 'the answer from byte 0 was the whole: not downloaded once more');
        // (The 200 to the second request was no answer to it: asked again from byte 0, and that whole was the one; then
        // once more past caches, as a whole download that does not match is: TemplateDownloads.downloadVerified.)
        assert.deepEqual(asked, ['bytes=25000-', 'bytes=30000-', undefined, undefined]);
        assert.deepEqual(fresh, [undefined, undefined, undefined, 'no-cache']);
        assert.deepEqual(await cacheLeftovers(path.join(d, 'cache')), { tmp: [], locks: [] });
      } finally {
        server.closeAllConnections();
        server.close();
      }
    });

    test('bytes left that are the whole template already are taken without a request; of several runs\' files, the longest is gone on with and the others removed', async () => {
      const { d, site, web } = await servedJigdo('template-resume-whole', 'img.jigdo');
      const template = await readFile(path.join(site, 'jf-md5-gzip.template'));
      const cache = path.join(d, 'cache');
      // A run that ended between the template's last byte and its commit (on 8892928: 416, then the whole again).
      await leaveResumeFile(d, site, template);
      const r = await makeImageOf(d, web, 'whole.iso');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await fileMd5(path.join(d, 'whole.iso')), v.imageMd5);
      assert.deepEqual(gets(web, '/jf-md5-gzip.template'), [], 'no request for the template');
      assert.deepEqual(await cacheLeftovers(cache), { tmp: [], locks: [] });
      // Two runs' files: the longer one's bytes are gone on with.
      web.reset();
      await rm(cache, { recursive: true, force: true });
      await leaveResumeFile(d, site, template.subarray(0, 1_000));
      await leaveResumeFile(d, site, template.subarray(0, 30_000));
      await leaveResumeFile(d, site, template.subarray(0, 2_000));
      const again = await makeImageOf(d, web, 'again.iso');
      assert.equal(again.code, 0, again.stderr);
      assert.equal(await fileMd5(path.join(d, 'again.iso')), v.imageMd5);
      assert.deepEqual(gets(web, '/jf-md5-gzip.template').map((g) => g.range), ['bytes=30000-']);
      assert.deepEqual(await cacheLeftovers(cache), { tmp: [], locks: [] }, 'the shorter ones removed');
    });

    test('a template larger than the cache may hold is refused and nothing of it is kept, run after run', async () => {
      const { d, web } = await servedJigdo('template-resume-too-large', 'img.jigdo');
      web.fault('/jf-md5-gzip.template', { kind: 'endless', prefix: 'JigsawDownload template 1.2 jigdo-file/0.8.0\r\n' });
      for (let run = 0; run < 2; run++) {
        const r = await makeImageOf(d, web, 'out.iso', ['--cache-size', '1M']);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /it goes on past the cache's limit/);
        // On db88392 a 1 MB file stayed, outside the cache's limit, and the next run asked for more of it.
        assert.deepEqual(await cacheLeftovers(path.join(d, 'cache')), { tmp: [], locks: [] }, `run ${run}`);
      }
      assert.deepEqual(gets(web, '/jf-md5-gzip.template').map((g) => g.range), [undefined, undefined]);
    });
  });
  test('info of a remote .jigdo whose template its server does not have (404) answers from the .jigdo, naming why; make-image fails in one line', async () => {
    const { d, web } = await servedJigdo('template-404', 'img.jigdo');
    web.fault('/jf-md5-gzip.template', { kind: 'status', code: 404 });
    const info = await runCli(['info', `${web.url}img.jigdo`, '--cache-dir', path.join(d, 'cache'), '--config', plainConfig, '--retries', '0', '--json'], { timeoutMs: 30_000 });
    assert.equal(info.code, 0, info.stderr);
    const j = JSON.parse(info.stdout) as { image: string; template: { available: boolean; reason: string } };
    assert.equal(j.image, 'image.iso');
    assert.equal(j.template.available, false);
    assert.match(j.template.reason, /jf-md5-gzip\.template: cannot fetch: HTTP 404/);
    const mk = await runCli(['make-image', `${web.url}img.jigdo`, '-o', path.join(d, 'out.iso'), '--cache-dir', path.join(d, 'cache'), '--config', plainConfig, '--retries', '0'], { timeoutMs: 30_000 });
    assert.equal(mk.code, 1);
    assert.equal(mk.stderr.trim().split('\n').length, 1, mk.stderr);
    assert.match(mk.stderr, /cannot fetch: HTTP 404/);
  });
});
