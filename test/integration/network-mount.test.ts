/**
 * Mounts whose parts come from HTTP mirrors on 127.0.0.1: two mounts sharing parts fetch each part once
 * through the shared cache, a remote gzipped .jigdo mounts, and a part no mirror has fails only its
 * region with EIO and one log line.
 */
import { after, before, describe, test } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildFixtures, type FixtureSet, type FixtureVariant } from '../helpers/fixtures.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { forceUnmount, isMounted, mountJigdo, type TestMount } from '../helpers/mount.js';
import { BIN, runCli } from '../helpers/cli.js';
import { assertCacheVerified, bytesByPath, cacheLeftovers, gets, jigdoWithServers, md5hex, partsUri, sleep, waitFor } from '../helpers/network.js';

let fx: FixtureSet;
let v: FixtureVariant;
let work: string;
let config: string;
const mirrors: Mirror[] = [];
const mounts: TestMount[] = [];

const PARTS = ['/parts/pool/a-3k.bin', '/parts/pool/b-40k.bin', '/parts/extra/c-200k-copy.bin', '/parts/pool/d-1500k.bin', '/parts/pool/e-3m.bin', '/parts/tiny/exact-1024.bin'];

before(async () => {
  fx = await buildFixtures();
  v = fx.variants['jf-md5-gzip'];
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-netmount-test-'));
  config = path.join(work, 'config.ini');
  await writeFile(config, '[network]\nretries = 0\ntimeout = 5\n');
});

after(async () => {
  for (const m of mounts) await m.cleanup();
  await Promise.all(mirrors.map((m) => m.close()));
  await rm(work, { recursive: true, force: true });
});

async function mirror(root: string, latencyMs = 0): Promise<Mirror> {
  const m = await startMirror({ root, latencyMs });
  mirrors.push(m);
  return m;
}

async function mount(jigdo: string, args: string[], cacheDir: string): Promise<TestMount> {
  const m = await mountJigdo(jigdo, ['--config', config, ...args], { cacheDir });
  mounts.push(m);
  return m;
}

describe('mounts over the network', () => {
  test('two mounts sharing parts: exact images, each part fetched once', async () => {
    const m = await mirror(fx.tree, 30);
    const cache = path.join(work, 'shared-cache');
    const j1 = await jigdoWithServers(fx.variants['jf-md5-gzip'], [partsUri(m)], path.join(work, 'one'));
    const j2 = await jigdoWithServers(fx.variants['jf-md5-bzip2'], [partsUri(m)], path.join(work, 'two'));
    const [m1, m2] = await Promise.all([mount(j1, [], cache), mount(j2, [], cache)]);
    const [a, b] = await Promise.all([readFile(m1.file('image.iso')), readFile(m2.file('image.iso'))]);
    assert.equal(md5hex(a), v.imageMd5);
    assert.equal(md5hex(b), v.imageMd5);
    const sent = bytesByPath(m);
    for (const p of PARTS) {
      const file = fx.files.find((f) => `/parts/${f.path.replace(/^parts\//, '')}` === p)!;
      assert.equal(gets(m, p).length, 1, `${p} requested once`);
      assert.equal(sent.get(p), file.size, `${p} sent once`);
    }
    const s = (await m1.status()) as { images: Array<{ parts: { byProvider: Record<string, number> } }> };
    const byProvider = s.images[0]!.parts.byProvider;
    assert.equal((byProvider.mirrors ?? 0) + (byProvider.cache ?? 0), PARTS.length, JSON.stringify(byProvider));
    // The same for people: one line per mirror used, no raw JSON (one mount may have waited for the other).
    const texts = await Promise.all([m1, m2].map((x) => runCli(['status', x.mnt])));
    const mirrorLine = new RegExp(`mirror http://127\\.0\\.0\\.1:${m.port}\\S*: [\\d.]+ MB in \\d+ requests .* 0 failures`);
    for (const t of texts) {
      assert.equal(t.code, 0, t.stderr);
      assert.match(t.stdout, /network: \d+ parts fetched \([\d.]+ MB\), 0 in flight, 0 failed/);
      assert.doesNotMatch(t.stdout, /[{}"]/, `no raw JSON:\n${t.stdout}`);
    }
    assert.ok(texts.some((t) => mirrorLine.test(t.stdout)), texts.map((t) => t.stdout).join('\n'));
    await m1.umount();
    await m2.umount();
    assert.equal((await assertCacheVerified(cache)).length, PARTS.length);
  });

  test('a remote gzipped .jigdo mounts; a part no mirror has gives EIO for its region only, one log line', async () => {
    const parts = await mirror(fx.tree);
    parts.fault('/parts/pool/e-3m.bin', { kind: 'status', code: 404 });
    const site = path.join(work, 'site');
    const local = await jigdoWithServers(v, [partsUri(parts)], site);
    await writeFile(path.join(site, 'img.jigdo'), gzipSync(await readFile(local)));
    const web = await mirror(site);
    const cache = path.join(work, 'remote-cache');
    await mkdir(cache, { recursive: true });
    const m = await mount(`${web.url}img.jigdo`, [], cache);
    const image = await readFile(v.image);
    const e = fx.files.find((f) => f.path === 'parts/pool/e-3m.bin')!;
    const key = Buffer.from(e.md5, 'hex').toString('base64url');
    const fh = await open(m.file('image.iso'), 'r');
    try {
      // Before the missing part (2,015,232 .. 5,015,232 in this image) and after it: exact.
      const head = Buffer.alloc(2_000_000);
      await fh.read(head, 0, head.length, 0);
      assert.ok(head.equals(image.subarray(0, head.length)), 'bytes before the missing part');
      const tail = Buffer.alloc(2_000_000);
      await fh.read(tail, 0, tail.length, image.length - tail.length);
      assert.ok(tail.equals(image.subarray(image.length - tail.length)), 'bytes after the missing part');
      await assert.rejects(fh.read(Buffer.alloc(4096), 0, 4096, 3_000_000), /EIO/);
    } finally {
      await fh.close();
    }
    const log = await m.log();
    const lines = log.split('\n').filter((l) => l.includes(key));
    assert.equal(lines.length, 1, `one log line names the part:\n${log}`);
    assert.match(lines[0]!, /not available/);
    assert.equal(gets(web, '/jf-md5-gzip.template').length, 1);
  });
  test('Ctrl-C twice on `mount -f` while a part downloads: the second ends it at once; nothing is left mounted or in the cache', async () => {
    const resumable = (f: string): boolean => f.startsWith('resume-parts-');
    const m = await mirror(fx.tree);
    m.fault('/parts/pool/e-3m.bin', { kind: 'stall', afterBytes: 1_000_000 });
    const d = path.join(work, 'twice');
    const cache = path.join(d, 'cache');
    const mnt = path.join(d, 'mnt');
    await mkdir(mnt, { recursive: true });
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    // Retries: on the old code the cut download went on with them, so the second Ctrl-C came in the middle of the shutdown.
    const args = [BIN, 'mount', '-f', jigdo, mnt, '--cache-dir', cache, '--config', config, '--retries', '4', '--timeout', '60'];
    const daemon = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    daemon.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => daemon.once('close', (code, signal) => r({ code, signal })));
    let reader: ChildProcess | undefined;
    let mountedAtEnd: boolean;
    try {
      await waitFor(() => /mounted image\.iso/.test(stderr), 20_000, 'the mount');
      reader = spawn('cat', [path.join(mnt, 'image.iso')], { stdio: 'ignore' });
      await waitFor(() => gets(m, '/parts/pool/e-3m.bin').some((r) => r.bytes >= 1_000_000), 20_000, 'the stalled download');
      // (A part over 1 MiB downloads into a resumable file: what is known written of it stays for the next fetch.)
      await waitFor(async () => (await cacheLeftovers(cache)).tmp.some(resumable), 5_000, 'its temporary file');
      daemon.kill('SIGINT');
      await sleep(50);
      daemon.kill('SIGINT');
      const end = await exited;
      // Either the second one ended it (as Ctrl-C's default) or the unmount was over before it came.
      assert.ok(end.signal === 'SIGINT' || end.code === 0, `${JSON.stringify(end)}\n${stderr}`);
    } finally {
      daemon.kill('SIGKILL');
      reader?.kill('SIGKILL');
      mountedAtEnd = await isMounted(mnt);
      if (mountedAtEnd) await forceUnmount(mnt);
    }
    assert.equal(mountedAtEnd, false, 'nothing mounted');
    const left = await cacheLeftovers(cache);
    assert.deepEqual({ ...left, tmp: left.tmp.filter((f) => !resumable(f)) }, { tmp: [], locks: [] }, stderr);
  });
  test('the `jigdofs mount` command killed before its daemon mounted (Ctrl-C while the template downloads): the daemon unmounts and ends, no crash', async () => {
    const site = path.join(work, 'site-parent');
    await jigdoWithServers(v, [], site, 'img.jigdo');
    const web = await mirror(site);
    web.fault('/jf-md5-gzip.template', { kind: 'delay', ms: 2500, times: 1 });
    const d = path.join(work, 'parent-gone');
    const mnt = path.join(d, 'mnt');
    const log = path.join(d, 'daemon.log');
    await mkdir(mnt, { recursive: true });
    const parent = spawn(process.execPath, [BIN, 'mount', `${web.url}img.jigdo`, mnt, '--cache-dir', path.join(d, 'cache'), '--config', config, '--log-file', log], { stdio: 'ignore' });
    let mountedAtEnd: boolean;
    try {
      await waitFor(() => gets(web, '/jf-md5-gzip.template').length > 0, 20_000, 'the template asked for');
      parent.kill('SIGINT');
      // On the old code the daemon mounted, then died of ERR_IPC_CHANNEL_CLOSED ("fatal internal error") when it told
      // the gone parent; now it unmounts what nobody was told of.
      await waitFor(async () => /unmounted /.test(await readFile(log, 'utf8').catch(() => '')), 20_000, `the daemon's unmount`);
    } finally {
      parent.kill('SIGKILL');
      mountedAtEnd = await isMounted(mnt);
      if (mountedAtEnd) await forceUnmount(mnt);
    }
    const text = await readFile(log, 'utf8');
    assert.equal(mountedAtEnd, false, text);
    assert.doesNotMatch(text, /fatal|Error/, text);
    assert.match(text, /the jigdofs mount command that started this daemon ended before the mount was ready: unmounting/);
  });
  test('a template slower to download than the mount waits for: the mount waits while bytes come, and the log says so; a silent one fails in one line', async () => {
    const site = path.join(work, 'site-slow');
    await jigdoWithServers(v, [], site, 'img.jigdo');
    const template = await readFile(path.join(site, 'jf-md5-gzip.template'));
    let silent = false;
    // 1.5 KiB every 100 ms: ~4.9 s for the template, against a wait of 2 s (JIGDOFS_MOUNT_WAIT) for the daemon's word (at
    // 1 s, a daemon slow to start on a busy machine had not said a word when the wait ran out).
    const server = createServer((req, res) => {
      if (req.url === '/img.jigdo') return void res.end(readFileSync(path.join(site, 'img.jigdo')));
      if (req.url !== '/jf-md5-gzip.template') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': template.length });
      if (silent) return; // headers, then nothing
      let at = 0;
      const timer = setInterval(() => {
        res.write(template.subarray(at, (at += 1536)));
        if (at >= template.length) {
          clearInterval(timer);
          res.end();
        }
      }, 100);
      res.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/img.jigdo`;
    const env = { ...process.env, JIGDOFS_MOUNT_WAIT: '2' };
    try {
      const t0 = Date.now();
      const m = await mountJigdo(url, ['--scan', v.partsDir], { cacheDir: path.join(work, 'slow-cache'), env });
      mounts.push(m);
      assert.ok(Date.now() - t0 > 3500, 'the template did take longer than the wait');
      assert.equal(md5hex(await readFile(m.file('image.iso'))), v.imageMd5);
      const log = await m.log();
      // Stamped like the daemon's own lines (the network's lines had no time before).
      assert.match(log, /^jigdofs: \d{4}-\d\d-\d\dT[\d:.]+Z fetching the template http:\/\/127\.0\.0\.1:\d+\/jf-md5-gzip\.template$/m);
      assert.match(log, new RegExp(`fetched the template .*: ${template.length} bytes in \\d+\\.\\d s`));
      assert.equal((await m.umount()).code, 0);

      silent = true;
      await assert.rejects(mountJigdo(url, ['--scan', v.partsDir], { cacheDir: path.join(work, 'silent-cache'), env }), /the daemon did not report a mount, nor download anything, for 2 s/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
