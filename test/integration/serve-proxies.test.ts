/**
 * Issue 12 item 3: scaling past one machine with Debian's own caching proxies, on loopback, with the
 * configs shipped in docs/proxy/ (their @…@ values filled in):
 *  (a) two jigdofs with separate caches through one squid: the origin mirror sees each part once;
 *  (b) one `jigdofs serve` behind nginx proxy_cache + slice: clients get the exact image, and each 1 MiB
 *      slice is read from jigdofs once.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { assertOk, ROOT, runCli, type CliResult } from '../helpers/cli.js';
import { freePort, startDaemon, stopDaemons } from '../helpers/daemons.js';
import { buildFixtures, type FixtureSet, type FixtureVariant } from '../helpers/fixtures.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { fileMd5, gets, jigdoWithServers, md5hex, partsUri, selfSignedCertificate, waitFor } from '../helpers/network.js';
import { execFileP, httpGet, startServe, type TestServer } from '../helpers/serve.js';

let fx: FixtureSet;
let v: FixtureVariant;
let image: Buffer;
let work: string;
const mirrors: Mirror[] = [];
const servers: TestServer[] = [];

before(async () => {
  fx = await buildFixtures();
  v = fx.variants['jf-md5-gzip'];
  image = await readFile(v.image);
  // The proxies drop root for their own users (proxy, nobody): their folder must be theirs to write.
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-proxies-test-'));
  await chmod(work, 0o755);
});

after(async () => {
  for (const s of servers) await s.stop('SIGKILL');
  await stopDaemons();
  await Promise.all(mirrors.map((m) => m.close()));
  await rm(work, { recursive: true, force: true });
});

/** A docs/proxy config with its @NAME@ values filled in, written to `dir`. */
async function config(name: string, dir: string, values: Record<string, string>): Promise<string> {
  let text = await readFile(path.join(ROOT, 'docs', 'proxy', name), 'utf8');
  for (const [k, val] of Object.entries(values)) text = text.replaceAll(`@${k}@`, val);
  assert.doesNotMatch(text, /@[A-Z]+@/, 'every placeholder filled in');
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

/** squid with `conf`, its cache folders made first (`squid -z`, as the config's comment says). */
async function startSquid(conf: string, port: number, dir: string): Promise<void> {
  await execFileP('squid', ['-z', '-N', '-f', conf]);
  await startDaemon('squid', ['-N', '-f', conf], port, path.join(dir, 'cache.log'));
}

async function privateDir(name: string): Promise<string> {
  const dir = path.join(work, name);
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o777);
  return dir;
}

test('squid fleet: two jigdofs with separate caches through one squid; the origin sees each part once', async () => {
  const origin = await startMirror({ root: fx.tree });
  mirrors.push(origin);
  const dir = await privateDir('squid');
  const port = await freePort();
  const conf = await config('squid-fleet.conf', dir, { PORT: String(port), DIR: dir });
  await startSquid(conf, port, dir);
  const jigdo = await jigdoWithServers(v, [partsUri(origin)], path.join(work, 'fleet'));
  const env: NodeJS.ProcessEnv = { ...process.env, HTTP_PROXY: `http://127.0.0.1:${port}`, JIGDOFS_DEBUG: '', XDG_CONFIG_HOME: work };
  delete env.NO_PROXY;
  delete env.no_proxy;
  // Machine 1 builds the image; machine 2 serves it over HTTP. Separate caches: only squid is shared.
  const out = path.join(work, 'fleet', 'one.iso');
  const one = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(work, 'fleet-cache-1')], { env: { ...env, XDG_CACHE_HOME: work } });
  assertOk(one);
  assert.equal(md5hex(await readFile(out)), v.imageMd5);
  const s = await startServe([jigdo, '--cache-dir', path.join(work, 'fleet-cache-2')], { env });
  servers.push(s);
  const two = await httpGet(`${s.url}image.iso`);
  assert.equal(md5hex(two.body), v.imageMd5, 'machine 2 through squid');
  const parts = fx.files.filter((f) => f.isPart && f.size >= 1024).map((f) => `/parts/${f.path.replace(/^parts\//, '')}`);
  const access = await readFile(path.join(dir, 'access.log'), 'utf8');
  const fetched = parts.filter((p) => gets(origin, p).length > 0);
  assert.ok(fetched.length >= 5, `parts fetched: ${fetched.join(' ')}`);
  for (const p of fetched) assert.equal(gets(origin, p).length, 1, `${p}: fetched from the origin once for both machines:\n${access}\n${JSON.stringify(origin.requests.filter((r) => r.path === p))}`);
  assert.match(access, /TCP_(MEM_)?HIT\/200/, 'machine 2 was answered from squid\'s cache');
  // On the disk too: what keeps a part over the memory limit (64 MB) at all (the config before had no cache_dir).
  await waitFor(async () => (await readdir(path.join(dir, 'cache', '00', '00')).catch(() => [])).length >= fetched.length, 10_000, 'the parts in squid\'s cache_dir');
});

test('squid: a template replaced at the origin under its name (a weekly build) is not taken from the stale copy squid keeps', async () => {
  const site = path.join(work, 'weekly-site');
  await mkdir(site, { recursive: true });
  const origin = await startMirror({ root: site });
  const parts = await startMirror({ root: fx.tree });
  mirrors.push(origin, parts);
  const template = path.join(site, 'weekly.template');
  const weekly = async (variant: FixtureVariant, name: string): Promise<string> => {
    const jigdo = await jigdoWithServers(variant, [partsUri(parts)], path.join(work, 'weekly', name));
    await writeFile(jigdo, (await readFile(jigdo, 'utf8')).replace(/^Template=.*$/m, `Template=${origin.url}weekly.template`));
    return jigdo;
  };
  const lastWeek = await weekly(fx.variants['jf-md5-gzip'], 'last');
  const thisWeek = await weekly(fx.variants['jf-md5-bzip2'], 'this');
  const build = async (jigdo: string, port: number, run: string): Promise<CliResult> => {
    const env: NodeJS.ProcessEnv = { ...process.env, HTTP_PROXY: `http://127.0.0.1:${port}`, JIGDOFS_DEBUG: '', XDG_CONFIG_HOME: work };
    delete env.NO_PROXY;
    delete env.no_proxy;
    return runCli(['make-image', jigdo, '-o', path.join(work, 'weekly', `${run}.iso`), '--cache-dir', path.join(work, 'weekly', `cache-${run}`)], { env });
  };
  /** Last week's template cached by a squid with `conf` (its mtime a month back: squid's heuristics call it fresh), then this week's at the origin. */
  const replacedUnder = async (conf: string, port: number, run: string): Promise<void> => {
    await writeFile(template, await readFile(fx.variants['jf-md5-gzip'].template));
    const month = new Date(Date.now() - 30 * 86_400_000);
    await utimes(template, month, month);
    await startSquid(conf, port, path.dirname(conf));
    assertOk(await build(lastWeek, port, `${run}-last`));
    await writeFile(template, await readFile(fx.variants['jf-md5-bzip2'].template));
  };
  // The config shipped: templates are checked with the origin at each request.
  const shipped = await privateDir('squid-weekly');
  const port1 = await freePort();
  await replacedUnder(await config('squid-fleet.conf', shipped, { PORT: String(port1), DIR: shipped }), port1, 'shipped');
  const one = await build(thisWeek, port1, 'shipped');
  assertOk(one);
  assert.equal(await fileMd5(path.join(work, 'weekly', 'shipped.iso')), fx.variants['jf-md5-bzip2'].imageMd5);
  assert.doesNotMatch(one.stderr, /does not match/, 'the stale copy was never sent');
  // A proxy that keeps copies a week whatever they are (the config before; many caches on the way): the stale template
  // fails its checksum, and is asked for again past the cache.
  const keeping = await privateDir('squid-keeping');
  const port2 = await freePort();
  const conf = await config('squid-fleet.conf', keeping, { PORT: String(port2), DIR: keeping });
  await writeFile(conf, (await readFile(conf, 'utf8')).replace(/^refresh_pattern .*$/gm, '').concat('\nrefresh_pattern . 10080 100% 525600 override-expire\n'));
  await replacedUnder(conf, port2, 'keeping');
  const two = await build(thisWeek, port2, 'keeping');
  assertOk(two);
  assert.equal(await fileMd5(path.join(work, 'weekly', 'keeping.iso')), fx.variants['jf-md5-bzip2'].imageMd5);
  const access = await readFile(path.join(keeping, 'access.log'), 'utf8');
  assert.match(access, /TCP_(MEM_)?HIT\/200 .*weekly\.template/, `the stale copy came from squid's cache:\n${access}`);
  assert.match(access, /TCP_(CLIENT_)?REFRESH_MISS\/200 .*weekly\.template|TCP_MISS\/200 .*weekly\.template[\s\S]*TCP_MISS\/200 .*weekly\.template/, access);
});

test('squid CONNECT tunnel to an https mirror, its certificate trusted through NODE_EXTRA_CA_CERTS (loaded at the first connection)', async () => {
  const dir = await privateDir('squid-tls');
  const { key, cert } = await selfSignedCertificate(dir, 'mirror');
  const origin = await startMirror({ root: fx.tree, tls: { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8') } });
  mirrors.push(origin);
  const port = await freePort();
  const conf = await config('squid-fleet.conf', dir, { PORT: String(port), DIR: dir });
  await startSquid(conf, port, dir);
  const jigdo = await jigdoWithServers(v, [partsUri(origin)], path.join(work, 'tunnel'));
  const env: NodeJS.ProcessEnv = { ...process.env, HTTPS_PROXY: `http://127.0.0.1:${port}`, JIGDOFS_DEBUG: '', XDG_CONFIG_HOME: work, XDG_CACHE_HOME: work,
    NODE_OPTIONS: '', NODE_EXTRA_CA_CERTS: cert };
  delete env.NO_PROXY;
  delete env.no_proxy;
  // As users run it: bin/jigdofs hands the file to the client (src/network/extra-ca.ts), which uses it inside the tunnel.
  const out = path.join(work, 'tunnel', 'image.iso');
  const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(work, 'tunnel-cache')], { program: true, env });
  assertOk(r);
  assert.equal(md5hex(await readFile(out)), v.imageMd5);
  const access = await readFile(path.join(dir, 'access.log'), 'utf8');
  assert.match(access, new RegExp(`CONNECT 127\\.0\\.0\\.1:${new URL(origin.url).port}`), access);
  assert.ok(origin.requests.some((q) => q.method === 'GET' && q.path.startsWith('/parts/')), 'the parts came from the https mirror');
});

test('nginx proxy_cache + slice in front of one jigdofs serve: exact images, each slice read from jigdofs once', async () => {
  const origin = await startMirror({ root: fx.tree });
  mirrors.push(origin);
  const jigdo = await jigdoWithServers(v, [partsUri(origin)], path.join(work, 'edge'));
  const s = await startServe([jigdo, '--cache-dir', path.join(work, 'edge-cache')]);
  servers.push(s);
  const dir = await privateDir('nginx');
  await privateDir('nginx/tmp');
  const port = await freePort();
  const conf = await config('nginx-serve.conf', dir, { PORT: String(port), DIR: dir, UPSTREAM: `127.0.0.1:${s.port}` });
  await startDaemon('nginx', ['-c', conf, '-g', 'daemon off;'], port, path.join(dir, 'error.log'));
  const url = `http://127.0.0.1:${port}/image.iso`;
  // Four whole downloads and some ranges at once, then all of it again (from nginx's cache).
  for (let round = 0; round < 2; round++) {
    const ranges: Array<[number, number]> = [[0, 99], [1_000_000, 3_500_000], [image.length - 5000, image.length - 1]];
    const [fulls, parts] = await Promise.all([
      Promise.all([0, 1, 2, 3].map(() => httpGet(url))),
      Promise.all(ranges.map(([a, b]) => httpGet(url, { Range: `bytes=${a}-${b}` }))),
    ]);
    for (const f of fulls) assert.equal(md5hex(f.body), v.imageMd5, `round ${round}: whole image through nginx`);
    ranges.forEach(([a, b], i) => {
      assert.equal(parts[i]!.status, 206);
      assert.ok(parts[i]!.body.equals(image.subarray(a, b + 1)), `round ${round}: range ${a}-${b}`);
    });
  }
  const curl = await execFileP('curl', ['-sS', '-o', path.join(work, 'edge.iso'), '-w', '%{http_code}', url]);
  assert.equal(curl.stdout, '200');
  assert.equal(md5hex(await readFile(path.join(work, 'edge.iso'))), v.imageMd5);
  const st = await s.status();
  const log = await readFile(path.join(dir, 'access.log'), 'utf8');
  const slices = Math.ceil(image.length / (1 << 20));
  assert.equal(st.server.byStatus['206'], slices, `each 1 MiB slice came from jigdofs exactly once: ${JSON.stringify(st.server)}\n${log}`);
  assert.ok(st.server.bytesSent <= image.length, `no byte twice: ${JSON.stringify(st.server)}`);
  assert.equal(st.server.aborted, 0);
});
