/**
 * A mirror that limits how many requests one client may run at once (nginx `limit_conn`, answered 503 beyond it), as
 * public mirrors do: make-image with the default 8 connections gets the whole image, asking the host no more than it
 * takes (HostLimits), where every request over the limit used to fail and, after a few rounds, the parts with it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { assertOk, runCli } from '../helpers/cli.js';
import { freePort, startDaemon, stopDaemons } from '../helpers/daemons.js';
import type { FixtureVariant } from '../helpers/fixtures.js';
import { fileMd5, jigdoWithServers, md5hex, randomPartsImage } from '../helpers/network.js';
import { httpGet, startServe } from '../helpers/serve.js';
import type { NetworkStats } from '../../src/network/network.js';

let work: string;

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-busy-test-'));
  await chmod(work, 0o755); // nginx's workers (user nobody) read the parts
  await limitedMirror();
});

after(async () => {
  await stopDaemons();
  await rm(work, { recursive: true, force: true });
});

/** nginx serving `root` on `port`: at most `perClient` requests at once per client address, each body at `rate`. */
async function limitedNginx(root: string, port: number, perClient: number, rate: string, name = 'nginx'): Promise<string> {
  const dir = path.join(work, name);
  await mkdir(path.join(dir, 'tmp'), { recursive: true });
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(conf, `pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events {}
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/tmp;
  limit_conn_zone $binary_remote_addr zone=perclient:1m;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location /parts/ {
      limit_conn perclient ${perClient};
      limit_rate ${rate};
    }
  }
}
`);
  await startDaemon('nginx', ['-c', conf, '-g', 'daemon off;'], port, path.join(dir, 'error.log'));
  return path.join(dir, 'access.log');
}

let v: FixtureVariant;
let jigdo: string;
let accessLog: string;

/** The image, and nginx with its parts: at most 2 requests at once per client, 2 MB/s each (so that requests overlap). */
async function limitedMirror(): Promise<void> {
  const d = path.join(work, 'img');
  v = await randomPartsImage(d, 24, 512 * 1024);
  const port = await freePort();
  accessLog = await limitedNginx(path.join(d, 'tree'), port, 2, '2m');
  jigdo = await jigdoWithServers(v, [`http://127.0.0.1:${port}/parts/`], path.join(work, 'jigdo'));
}

test('make-image from a mirror that takes 2 requests per client at once (nginx limit_conn, 503 beyond): the whole image, without failing parts', async () => {
  const out = path.join(work, 'out.iso');
  const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(work, 'cache')]);
  const log = await readFile(accessLog, 'utf8');
  const statuses = log.split('\n').filter((l) => l.includes('/parts/')).map((l) => / (\d{3}) /.exec(l)?.[1]);
  assertOk(r);
  assert.equal(await fileMd5(out), v.imageMd5);
  assert.ok(statuses.includes('503'), `the limit was met (else this test tests nothing):\n${log}`);
  assert.match(r.stderr, /mirror http:\/\/127\.0\.0\.1:\d+ refused a request with HTTP 503 while \d+ other\(s\) of ours ran: asking it at most \d+ at a time/);
  // Once learned, the limit is kept: a few refusals while it is found, not one per part.
  const refused = statuses.filter((s) => s === '503').length;
  assert.ok(refused <= 12, `${refused} requests refused:\n${log}`);
  assert.equal(statuses.filter((s) => s === '200' || s === '206').length, 24, 'each part fetched once');
});

test('serve from that mirror: the image whole, and status shows what its host takes', async () => {
  const s = await startServe([jigdo, '--cache-dir', path.join(work, 'serve-cache')]);
  try {
    const got = await httpGet(`${s.url}big.iso`);
    assert.equal(got.status, 200);
    assert.equal(md5hex(got.body), v.imageMd5);
    const st = (await s.status()) as unknown as { network: NetworkStats };
    const limit = st.network.mirrors[0]!.limit;
    assert.ok(limit !== undefined && limit >= 1 && limit <= 2, `limit ${limit}`);
    const text = await runCli(['status', s.url]);
    assert.match(text.stdout, new RegExp(`its host takes ${limit} request\\(s\\) at once from us`));
  } finally {
    await s.stop();
  }
});

test('a part fetched in parallel ranges from that kind of mirror: each range refused once is a limit\'s answer, not the part\'s failure', async () => {
  // One URL, four range streams at once: the second range refused was taken for the URL answered busy twice, and the part failed.
  const d = path.join(work, 'ranged');
  const big = await randomPartsImage(d, 1, 40 << 20);
  const port = await freePort();
  const log = await limitedNginx(path.join(d, 'tree'), port, 2, '8m', 'nginx-ranged');
  const ranged = await jigdoWithServers(big, [`http://127.0.0.1:${port}/parts/`], path.join(work, 'jigdo-ranged'));
  const out = path.join(work, 'ranged.iso');
  const r = await runCli(['make-image', ranged, '-o', out, '--cache-dir', path.join(work, 'cache-ranged')]);
  assertOk(r);
  assert.equal(await fileMd5(out), big.imageMd5);
  assert.match(await readFile(log, 'utf8'), / 503 /, 'the limit was met');
});
