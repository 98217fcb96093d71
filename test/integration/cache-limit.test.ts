/**
 * Issue 7 items 12 and 15 end to end: `--cache-size` holds while make-image runs (not only when it ends),
 * and the cache directory and everything in it are private, whatever the umask.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BIN, describeRun, runCli } from '../helpers/cli.js';
import { buildFixtures, type FixtureVariant } from '../helpers/fixtures.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { forceUnmount, isMounted, mountJigdo } from '../helpers/mount.js';
import { bytesByPath, cacheFiles, fileMd5, jigdoWithServers, partsUri, randomBytesOf, randomPartsImage, sleep } from '../helpers/network.js';


const PARTS = 20;
const PART = 2_500_000;
/** A zero run long enough for a template chunk above the spill threshold (inflated/ is made). */
const ZEROS = 40_000_000;
const LIMIT = 10 * 1024 * 1024; // --cache-size 10M

let work: string;
let big: FixtureVariant;
let mirror: Mirror;

/** 50 MB of parts in a 90 MB image (with a sparse zero run), made with jigdo-file. */
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-cache-limit-'));
  big = await randomPartsImage(work, PARTS, PART, ZEROS);
  mirror = await startMirror({ root: path.join(work, 'tree') });
});

after(async () => {
  await mirror?.close();
  await rm(work, { recursive: true, force: true });
});

/** Bytes of verified files in the cache now; files evicted while we count are not counted (cacheFiles would throw). */
async function cacheBytes(cache: string): Promise<number> {
  let total = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) await walk(full);
      else total += (await stat(full).catch(() => undefined))?.size ?? 0;
    }
  };
  for (const kind of ['md5', 'sha256']) {
    await walk(path.join(cache, 'parts', kind));
    await walk(path.join(cache, 'templates', kind));
  }
  return total;
}

test('--cache-size 10M holds while make-image fetches 50 MB (never more than the limit plus one part)', async (t) => {
  const d = path.join(work, 'limit');
  const jigdo = await jigdoWithServers(big, [partsUri(mirror)], d);
  const cache = path.join(d, 'cache');
  const out = path.join(d, 'out.iso');
  const running = runCli(['make-image', jigdo, '-o', out, '--cache-dir', cache, '--cache-size', '10M'], { timeoutMs: 60_000 });
  let done = false;
  void running.finally(() => (done = true));
  let peak = 0;
  let samples = 0;
  while (!done) {
    const bytes = await cacheBytes(cache);
    peak = Math.max(peak, bytes);
    samples++;
    await sleep(10);
  }
  const r = await running;
  assert.equal(r.code, 0, describeRun(r));
  assert.equal(await fileMd5(out), big.imageMd5);
  assert.ok(samples > 5, `the cache was sampled while it ran (${samples} samples)`);
  t.diagnostic(`cache peak ${peak} bytes in ${samples} samples (limit ${LIMIT}, part ${PART})`);
  assert.ok(peak <= LIMIT + PART, `the cache held ${peak} bytes while running; limit ${LIMIT} + one part ${PART}`);
  const end = (await cacheFiles(cache)).reduce((n, f) => n + f.size, 0);
  assert.ok(end <= LIMIT, `${end} bytes left, limit ${LIMIT}`);
});

test('a cache smaller than the image\'s parts (64M for 120 MB): make-image and a mount\'s reader fetch each part once, also when the output is slow (parts are fetched no further ahead than the cache holds)', async () => {
  const d = path.join(work, 'ahead');
  const v = await randomPartsImage(d, 80, 1_500_000);
  const m = await startMirror({ root: path.join(d, 'tree') });
  try {
    const jigdo = await jigdoWithServers(v, [partsUri(m)], path.join(d, 'jigdo'));
    const sent = (): number => [...bytesByPath(m).values()].reduce((a, b) => a + b, 0);
    const out = path.join(d, 'out.iso');
    const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'cache'), '--cache-size', '64M'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, describeRun(r));
    assert.equal(await fileMd5(out), v.imageMd5);
    assert.ok(sent() <= 80 * 1_500_000 * 1.05, `make-image: the mirror sent ${sent()} bytes for ${80 * 1_500_000} bytes of parts`);
    // The stream slower than the mirror (a pipe read at 40 MB/s): parts were all located (fetched) ahead of it, 8 at a
    // time, and most were evicted before it came to them.
    m.requests.length = 0;
    const piped = await slowlyRead(['make-image', jigdo, '-o', '-', '--cache-dir', path.join(d, 'cache-2'), '--cache-size', '64M'], 40e6);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.md5, v.imageMd5);
    assert.ok(sent() <= 80 * 1_500_000 * 1.05, `make-image -o -: the mirror sent ${sent()} bytes for ${80 * 1_500_000} bytes of parts`);
    // A mount read through once (a cp): its prefetch reached 96 MiB ahead of the reader, more than the cache holds.
    m.requests.length = 0;
    const mounted = await mountJigdo(jigdo, ['--cache-size', '64M'], { cacheDir: path.join(d, 'cache-3') });
    try {
      assert.equal(mounted.mountResult.code, 0, describeRun(mounted.mountResult));
      assert.equal(await fileMd5(mounted.file('big.iso')), v.imageMd5);
    } finally {
      await mounted.cleanup();
    }
    assert.ok(sent() <= 80 * 1_500_000 * 1.05, `mount: the mirror sent ${sent()} bytes for ${80 * 1_500_000} bytes of parts`);
  } finally {
    await m.close();
  }
});

/** Runs the CLI and reads its standard output at about `bytesPerSecond`: its exit code, standard error, and the output's MD5. */
async function slowlyRead(args: string[], bytesPerSecond: number): Promise<{ code: number | null; stderr: string; md5: string }> {
  const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  p.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  const md5 = createHash('md5');
  const t0 = performance.now();
  let got = 0;
  for await (const chunk of p.stdout as AsyncIterable<Buffer>) {
    md5.update(chunk);
    got += chunk.length;
    const early = (got / bytesPerSecond) * 1000 - (performance.now() - t0);
    if (early > 0) await sleep(early);
  }
  const code = await new Promise<number | null>((r) => (p.exitCode !== null ? r(p.exitCode) : p.once('exit', (c) => r(c))));
  return { code, stderr, md5: md5.digest('hex') };
}

/** Every folder and file under `dir`, with its permission bits. */
async function modes(dir: string): Promise<Array<{ file: string; dir: boolean; mode: number }>> {
  const out: Array<{ file: string; dir: boolean; mode: number }> = [];
  const st = await stat(dir);
  out.push({ file: dir, dir: st.isDirectory(), mode: st.mode & 0o777 });
  if (st.isDirectory()) for (const name of await readdir(dir)) out.push(...(await modes(path.join(dir, name))));
  return out;
}

test('under umask 022 the cache (parts, tmp, locks, inflated, logs, hash index) is created private', async () => {
  const old = process.umask(0o022);
  const d = path.join(work, 'private');
  const cache = path.join(d, 'new', 'cache'); // made with its parents
  const mnt = path.join(d, 'mnt');
  try {
    const jigdo = await jigdoWithServers(big, [partsUri(mirror)], d);
    const r = await runCli(['make-image', jigdo, '-o', path.join(d, 'out.iso'), '--cache-dir', cache, '--scan', path.join(work, 'tree', 'parts', 'p00.bin'), '--keep-parts']);
    assert.equal(r.code, 0, describeRun(r));
    // A mount without --log-file keeps its log under the cache's logs/.
    const small = (await buildFixtures()).variants['jf-md5-gzip'];
    await mkdir(mnt);
    const m = await runCli(['mount', small.jigdo, mnt, '--cache-dir', cache, '--offline', '--scan', small.partsDir]);
    assert.equal(m.code, 0, describeRun(m));
    assert.equal((await runCli(['umount', mnt])).code, 0);

    const all = await modes(cache);
    const names = new Set(all.map((e) => path.relative(cache, e.file)));
    for (const want of ['parts', 'parts/tmp', 'parts/locks', 'parts/md5', 'inflated', 'logs', 'hash-index.jsonl']) assert.ok(names.has(want), `${want} exists`);
    assert.ok(all.some((e) => !e.dir && e.file.includes(`${path.sep}md5${path.sep}`)), 'a cached part');
    for (const e of all) {
      if (e.dir) assert.equal(e.mode, 0o700, `${e.file} is 0${e.mode.toString(8)}`);
      else if (!e.file.startsWith(path.join(cache, 'logs'))) assert.equal(e.mode, 0o600, `${e.file} is 0${e.mode.toString(8)}`); // the log file: item 15's other half
    }
    for (const parent of [path.join(d, 'new')]) assert.equal((await stat(parent)).mode & 0o777, 0o700, parent);
  } finally {
    process.umask(old);
    if (await isMounted(mnt)) await forceUnmount(mnt);
  }
});

/**
 * An image whose template holds a 30 MB run of 0xFF (a flash image's padding): jigdo-file compresses it about 1000:1 into
 * one zlib chunk above the spill threshold, and its spill file takes 30 MB of disk (it is not zeros, so not sparse).
 */
async function paddedImage(dir: string, seed: number): Promise<{ jigdo: string; md5: string; parts: string }> {
  const parts = path.join(dir, 'p');
  await mkdir(parts, { recursive: true });
  const part = randomBytesOf(300_000, seed);
  await writeFile(path.join(parts, 'part.bin'), part);
  const image = path.join(dir, 'img.bin');
  const fh = await open(image, 'w');
  await fh.write(Buffer.concat([randomBytesOf(70_000, seed + 1), part, Buffer.alloc(30_000_000, 0xff), randomBytesOf(100_000, seed + 2)]));
  await fh.close();
  await promisify(execFile)('jigdo-file', ['make-template', '-r', 'quiet', '--force', '--no-cache', `--image=${image}`, '--jigdo=x.jigdo', '--template=x.template', 'p//'], { cwd: dir });
  return { jigdo: path.join(dir, 'x.jigdo'), md5: await fileMd5(image), parts };
}

/** Disk blocks taken by the finished spill files under the cache's inflated/ (temporary ones are a running inflate's). */
async function spillBytes(cache: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(path.join(cache, 'inflated'), { recursive: true }).catch(() => [] as string[])) {
    const st = await stat(path.join(cache, 'inflated', name));
    if (st.isFile() && !name.endsWith('.tmp')) total += st.blocks * 512;
  }
  return total;
}

test('spill files of huge template chunks count against --cache-size: a second template evicts the first one\'s', async () => {
  const d = path.join(work, 'spills');
  const cache = path.join(d, 'cache');
  const limit = 45 * 1024 * 1024;
  for (const seed of [1, 2]) {
    const img = await paddedImage(path.join(d, `img${seed}`), seed * 10);
    const out = path.join(d, `out${seed}.iso`);
    const r = await runCli(['make-image', img.jigdo, '-o', out, '--cache-dir', cache, '--cache-size', '45M', '--offline', '--scan', img.parts]);
    assert.equal(r.code, 0, describeRun(r));
    assert.equal(await fileMd5(out), img.md5);
    const spilled = await spillBytes(cache);
    assert.ok(spilled >= 30_000_000, `image ${seed}'s 0xFF run was spilled (${spilled} bytes of spill files)`);
    // On the code before, the two templates' spills stayed side by side: 60 MB under a 45 MB limit.
    assert.ok(spilled <= limit, `${spilled} bytes of spill files after image ${seed}, limit ${limit}`);
  }
});

test('templates a .jigdo gives no checksum for count against --cache-size: a second one evicts the first', async () => {
  const limit = 10 * 1024 * 1024;
  const cache = path.join(work, 'unverified-cache');
  const kept = async (): Promise<number> => {
    let total = 0;
    for (const name of await readdir(path.join(cache, 'templates', 'unverified')).catch(() => [] as string[])) total += (await stat(path.join(cache, 'templates', 'unverified', name))).size;
    return total;
  };
  for (const seed of [1, 2]) {
    // 6 MB of random bytes and no parts: a template of about 6 MB, fetched from the mirror with nothing to check it by.
    const dir = path.join(mirror.root, `unverified${seed}`);
    await mkdir(path.join(dir, 'p'), { recursive: true });
    const image = path.join(dir, 'img.bin');
    await writeFile(image, randomBytesOf(6_000_000, 40 + seed));
    await promisify(execFile)('jigdo-file', ['make-template', '-r', 'quiet', '--force', '--no-cache', `--image=${image}`, '--jigdo=x.jigdo', '--template=x.template', 'p//'], { cwd: dir });
    const text = (await readFile(path.join(dir, 'x.jigdo'), 'utf8')).replace(/^Template-MD5Sum=.*\n/m, '');
    await writeFile(path.join(dir, 'x.jigdo'), text);
    const out = path.join(work, `unverified${seed}.iso`);
    const r = await runCli(['make-image', `${mirror.url}unverified${seed}/x.jigdo`, '-o', out, '--cache-dir', cache, '--cache-size', '10M']);
    assert.equal(r.code, 0, describeRun(r));
    assert.equal(await fileMd5(out), await fileMd5(image));
    const bytes = await kept();
    assert.ok(bytes >= 6_000_000, `template ${seed} is in the cache (${bytes} bytes of unverified templates)`);
    // On the code before, both stayed: 12 MB under a 10 MB limit.
    assert.ok(bytes <= limit, `${bytes} bytes of unverified templates after template ${seed}, limit ${limit}`);
  }
});
