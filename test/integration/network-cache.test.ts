/**
 * The disk cache under fetches: it only ever holds verified files (also after kill -9 or Ctrl-C mid-fetch),
 * --cache-size holds, and two processes sharing parts fetch each part once.
 * (Split from network.test.ts by concern; the shared setup is test/helpers/network-suite.ts.)
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeImage } from '../../src/build/make-image.js';
import { ownerTag } from '../../src/util/pid.js';
import { BIN, runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/daemons.js';
import { httpGet } from '../helpers/serve.js';
import { assertCacheVerified, bytesByPath, cacheFiles, cacheLeftovers, fileMd5, gets, jigdoWithServers, partsUri, waitFor } from '../helpers/network.js';
import { fx, v, plainConfig, rangedConfig, P, mirror, dir, keyOf, open, setupNetworkSuite } from '../helpers/network-suite.js';

setupNetworkSuite();

/**
 * A `make-image` child whose fetch of P.e (3 MiB) stalls after `stallAt` bytes (1 MB: less than the 1 MiB its progress
 * is reported by): returns once that fetch is stalled, the temporary image exists and the five other parts are cached.
 */
async function stalledMakeImage(name: string, stallAt = 1_000_000) {
  const m = await mirror();
  m.fault(P.e, { kind: 'stall', afterBytes: stallAt });
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
    await waitFor(() => gets(m, P.e).some((r) => r.bytes >= stallAt), 20_000, 'the stalled fetch');
    await waitFor(async () => (await cacheLeftovers(cache)).tmp.length > 0, 5_000, 'a temporary part file');
    await waitFor(async () => (await readdir(d)).some((f) => f.startsWith('out.iso.jigdofs-')), 5_000, 'the temporary image');
    await waitFor(async () => (await cacheFiles(cache)).length === 5, 10_000, 'the other parts cached');
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return { m, d, cache, jigdo, out, child, exited, stderr: () => stderr };
}

describe('the disk cache', () => {
  test('kill -9 during a fetch leaves no bad part; the rerun completes and removes the killed run\'s temporary image', async () => {
    const { m, d, cache, jigdo, out, child, exited } = await stalledMakeImage('kill');
    try {
      // A part's lock goes a moment after its rename: wait until only the stalled fetch holds one.
      await waitFor(async () => (await cacheLeftovers(cache)).locks.length === 1, 10_000, 'the other fetches finished');
    } finally {
      child.kill('SIGKILL');
    }
    await exited;
    const left = await cacheLeftovers(cache);
    // (Resumable, a part over 1 MiB: a kill -9 cannot cut it to what it knows is written, so the next run checks it whole.)
    const partial = (f: string): boolean => f.startsWith('resume-parts-');
    assert.equal(left.tmp.filter(partial).length, 1, 'the killed fetch left its file behind');
    assert.deepEqual(left.tmp.filter((f) => !partial(f)), [`${ownerTag(child.pid)}-lock.spare`], 'and its lock inode');
    assert.equal(left.locks.length, 1, 'and its lock');
    const files = await assertCacheVerified(cache);
    assert.equal(files.length, 5, 'the partial part is not under its checksum name');

    const killedImage = `out.iso.jigdofs-${ownerTag(child.pid)}.tmp`;
    assert.ok((await readdir(d)).includes(killedImage), 'the killed run left its temporary image');

    m.fault(P.e, null);
    const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', cache, '--config', plainConfig, '--keep-parts'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fileMd5(out), v.imageMd5);
    assert.match(r.stderr, new RegExp(`removed .*${killedImage.replace(/\./g, '\\.')}, left by a run that was killed`));
    assert.deepEqual((await readdir(d)).filter((f) => f.startsWith('out.iso.jigdofs-')), [], 'no temporary image left');
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
    assert.equal(stderr().trim().split('\n').length, 1, `one line: ${stderr()}`);
    assert.deepEqual((await readdir(d)).filter((f) => f.startsWith('out.iso')), [], 'neither the image nor its temporary file');
    assert.deepEqual(await cacheLeftovers(cache), { tmp: [], locks: [] }, 'nor the cut download\'s temporary file and lock');

    m.fault(P.e, null);
    const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', cache, '--config', plainConfig], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fileMd5(out), v.imageMd5);
    for (const p of Object.values(P)) if (p !== P.e) assert.equal(gets(m, p).length, 1, `${p} fetched once in both runs`);
  });

  test('Ctrl-C while a part downloads keeps what came of it; the rerun asks only for the rest (jigdo-lite: wget --continue)', async () => {
    const { m, jigdo, out, cache, child, exited, stderr } = await stalledMakeImage('sigint-resume', 2_500_000);
    try {
      child.kill('SIGINT');
      assert.deepEqual(await exited, { code: null, signal: 'SIGINT' }, stderr());
    } finally {
      child.kill('SIGKILL');
    }
    const left = await cacheLeftovers(cache);
    const kept = left.tmp.filter((f) => f.startsWith('resume-parts-'));
    assert.equal(kept.filter((f) => !f.endsWith('.kept')).length, 1, `the cut download's bytes stay: ${left.tmp.join(' ')}`);
    assert.equal(kept.filter((f) => f.endsWith('.kept')).length, 1, `with the length known written beside them: ${left.tmp.join(' ')}`);
    assert.deepEqual(left.locks, [], 'not its lock');
    // The cache's shared count, made before the bytes were left, is told of them: the next process counts them.
    assert.ok(await stat(path.join(cache, 'parts', 'size.leftovers')).then(() => true, () => false), 'the leftovers\' mark');
    m.fault(P.e, null);
    const before = gets(m, P.e).length;
    const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', cache, '--config', plainConfig], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fileMd5(out), v.imageMd5);
    const again = gets(m, P.e).slice(before);
    assert.equal(again.length, 1, JSON.stringify(again));
    const from = Number(/^bytes=(\d+)-/.exec(again[0]!.range ?? '')?.[1]);
    assert.ok(from >= 1 << 20 && from <= 2_500_000, `the rerun went on from byte ${again[0]!.range} (the stall was at 2,500,000)`);
    assert.deepEqual(await cacheLeftovers(cache), { tmp: [], locks: [] }, 'the resumed file went into the cache');
  });

  test('bytes a dead run left of a part, from a mirror that ignores Range: the part comes whole in the same round (--retries 0)', async () => {
    // python's http.server answers every request with the whole file (200).
    const port = await freePort();
    const server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', fx.tree], { stdio: 'ignore' });
    try {
      await waitFor(() => httpGet(`http://127.0.0.1:${port}/`).then(() => true, () => false), 10_000, 'python http.server');
      const d = await dir('norange-resume');
      const cache = path.join(d, 'cache');
      const jigdo = await jigdoWithServers(v, [`http://127.0.0.1:${port}/parts/`], d);
      const part = await readFile(path.join(fx.tree, P.e));
      const tmp = path.join(cache, 'parts', 'tmp');
      await mkdir(tmp, { recursive: true });
      const hex = createHash('md5').update(part).digest('hex');
      await writeFile(path.join(tmp, `resume-parts-md5-${hex}.${ownerTag(4_194_310)}`), part.subarray(0, 2 << 20)); // (a pid past the kernel's highest: dead)
      const out = path.join(d, 'out.iso');
      const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', cache, '--config', plainConfig, '--retries', '0'], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await fileMd5(out), v.imageMd5);
    } finally {
      server.kill('SIGKILL');
    }
  });

  test('a whole part a dead run left before its commit is committed without a request, and counted as another process\'s, not as fetched', async () => {
    const m = await mirror();
    const d = await dir('whole-leftover');
    const cache = path.join(d, 'cache');
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    const part = await readFile(path.join(fx.tree, P.e));
    const tmp = path.join(cache, 'parts', 'tmp');
    await mkdir(tmp, { recursive: true });
    const hex = createHash('md5').update(part).digest('hex');
    await writeFile(path.join(tmp, `resume-parts-md5-${hex}.${ownerTag(4_194_311)}`), part); // (a pid past the kernel's highest: dead)
    const o = await open(jigdo, cache, { config: plainConfig });
    try {
      const r = await makeImage(o.s, path.join(d, 'out.iso'));
      assert.deepEqual(r.missing, []);
      assert.equal(await fileMd5(path.join(d, 'out.iso')), v.imageMd5);
      assert.deepEqual(gets(m, P.e), [], 'not asked for');
      const { parts } = o.net.stats();
      assert.equal(parts.fromOtherProcess, 1, 'the leftover: another process\'s download');
      const distinct = [...o.s.layout.parts.values()];
      const fetched = distinct.filter((p) => p.key !== keyOf(o.s, P.e));
      assert.equal(parts.fetched, fetched.length, 'the others, fetched (on the code before: the leftover too)');
      assert.equal(parts.bytes, fetched.reduce((n, p) => n + p.length, 0));
    } finally {
      await o.close();
    }
  });

  for (const [how, config] of [['in one request (hashed as it comes)', () => plainConfig], ['in ranges (hashed on a worker, by name)', () => rangedConfig]] as const) {
    test(`the cache folder removed while a part downloads ${how}: that part is fetched again into a new one, and the image is exact`, async () => {
      const m = await mirror();
      m.fault(P.e, { kind: 'delay', ms: 1500, times: 1 });
      const d = await dir('cache-removed');
      const cache = path.join(d, 'cache');
      const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
      const out = path.join(d, 'out.iso');
      const run = runCli(['make-image', jigdo, '-o', out, '--cache-dir', cache, '--config', config()], { timeoutMs: 30_000 });
      await waitFor(() => gets(m, P.e).some((r) => r.fault === 'delay'), 10_000, 'the delayed request');
      await waitFor(async () => (await cacheLeftovers(cache)).tmp.length > 0, 5_000, 'a temporary part file');
      await rename(cache, `${cache}.gone`); // as `rm -rf` (at once: rm races with the files the run makes)
      const r = await run;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await fileMd5(out), v.imageMd5);
    });
  }

  test('closed while a part downloads (a mount unmounted): once close returns, the cut download left neither its temporary file nor its lock', async () => {
    // The daemon exits right after its sessions close: a cleanup still under way then is never done (the soak test
    // found a .partial file and a lock left by an unmounted mount).
    const m = await mirror();
    m.fault(P.e, { kind: 'stall', afterBytes: 1_000_000 });
    const d = await dir('close-mid-fetch');
    const cache = path.join(d, 'cache');
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    const logged: string[] = [];
    const o = await open(jigdo, cache, { config: plainConfig, timeout: '60', retries: '4' }, (line) => logged.push(line));
    const read = o.s.reader.read(o.s.layout.parts.get(keyOf(o.s, P.e))!.offsets[0]!, 4096);
    read.catch(() => undefined);
    await waitFor(() => gets(m, P.e).some((r) => r.bytes >= 1_000_000), 10_000, 'the stalled fetch');
    // (A part over 1 MiB downloads into a resumable file: what it got stays for the next fetch, cut to what is known written.)
    const resumable = (f: string): boolean => f.startsWith('resume-parts-');
    await waitFor(async () => (await cacheLeftovers(cache)).tmp.some(resumable), 5_000, 'its temporary file');
    const t0 = Date.now();
    await o.close();
    // Nor is the cut download retried (rounds after 0.5, 1.5, 4.5 s... while the close waits for it): a shutdown is no mirror's failure.
    assert.ok(Date.now() - t0 < 2000, `close took ${Date.now() - t0} ms`);
    const left = await cacheLeftovers(cache);
    assert.deepEqual({ ...left, tmp: left.tmp.filter((f) => !resumable(f)) }, { tmp: [], locks: [] }, 'left in the cache');
    await assert.rejects(read);
    assert.deepEqual(logged, [], 'and no part is logged as not available');
  });

  test('--cache-size holds (least recently used parts evicted); the image is still exact', async () => {
    const m = await mirror();
    const d = await dir('limit');
    const cache = path.join(d, 'cache');
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    const limit = 4 << 20; // the parts need 4.94 MB
    for (let run = 0; run < 2; run++) {
      const again = run > 0 ? ['--force'] : []; // the first run's image is there
      const r = await runCli(['make-image', jigdo, '-o', path.join(d, 'out.iso'), '--cache-dir', cache, '--config', plainConfig, '--cache-size', '4M', ...again], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await fileMd5(path.join(d, 'out.iso')), v.imageMd5);
      const files = await assertCacheVerified(cache);
      const total = files.reduce((n, f) => n + f.size, 0);
      assert.ok(total <= limit, `cache holds ${total} bytes, limit ${limit}`);
      assert.ok(files.length < 6, 'something was evicted');
    }
  });

  // With --keep-parts: without it, the first to finish removes what it downloaded, and the other may fetch a part again.
  test('two processes building images that share parts fetch each part once', async () => {
    const m = await mirror(40);
    const d = await dir('two');
    const cache = path.join(d, 'cache');
    const j1 = await jigdoWithServers(fx.variants['jf-md5-gzip'], [partsUri(m)], path.join(d, 'one'));
    const j2 = await jigdoWithServers(fx.variants['jf-md5-bzip2'], [partsUri(m)], path.join(d, 'two'));
    const [r1, r2] = await Promise.all([
      runCli(['make-image', j1, '-o', path.join(d, 'one.iso'), '--cache-dir', cache, '--config', plainConfig, '--keep-parts'], { timeoutMs: 30_000 }),
      runCli(['make-image', j2, '-o', path.join(d, 'two.iso'), '--cache-dir', cache, '--config', plainConfig, '--keep-parts'], { timeoutMs: 30_000 }),
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
  test('two make-image runs to one output at once: one writes it, the other says it was written meanwhile (both said "wrote" before)', async () => {
    const fast = await mirror();
    const slow = await mirror();
    fast.fault(P.d, { kind: 'delay', ms: 1000, times: 1 });
    slow.fault(P.d, { kind: 'delay', ms: 3500, times: 1 });
    const d = await dir('same-output');
    const out = path.join(d, 'out.iso');
    const run = async (m: typeof fast, name: string) =>
      runCli(['make-image', await jigdoWithServers(v, [partsUri(m)], path.join(d, name)), '-o', out, '--cache-dir', path.join(d, `cache-${name}`), '--config', plainConfig], { timeoutMs: 30_000 });
    const [a, b] = await Promise.all([run(fast, 'a'), run(slow, 'b')]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 1, b.stderr);
    assert.match(b.stderr, /out\.iso: was written meanwhile \(by another run\?\): not replaced/);
    assert.equal(await fileMd5(out), v.imageMd5);
    assert.deepEqual((await readdir(d)).filter((f) => f.startsWith('out.iso')), ['out.iso'], 'no temporary image left');
  });
});
