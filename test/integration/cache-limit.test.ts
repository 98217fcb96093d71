/**
 * Issue 7 items 12 and 15 end to end: `--cache-size` holds while make-image runs (not only when it ends),
 * and the cache directory and everything in it are private, whatever the umask.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describeRun, runCli } from '../helpers/cli.js';
import { buildFixtures, type FixtureVariant } from '../helpers/fixtures.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { forceUnmount, isMounted } from '../helpers/mount.js';
import { cacheFiles, fileMd5, jigdoWithServers, partsUri, randomPartsImage, sleep } from '../helpers/network.js';


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
    for (const want of ['parts', 'parts/tmp', 'parts/locks', 'parts/md5', 'inflated', 'logs', 'hash-index.json']) assert.ok(names.has(want), `${want} exists`);
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
