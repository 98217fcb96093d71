/**
 * Parts from the network when mirrors fail in every way (404, 500, cuts, stalls, trickles, wrong and short
 * bodies), against real HTTP mirrors on 127.0.0.1 with scripted faults: the image is exact whenever one mirror
 * has each part; a cut range resumes with Range; bad mirrors are demoted.
 * (Split from network.test.ts by concern; the shared setup is test/helpers/network-suite.ts.)
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeImage } from '../../src/build/make-image.js';
import { ImageReader } from '../../src/image/reader.js';
import { assertCacheVerified, fileMd5, gets, jigdoWithServers, manyParts, partsUri, sleep, waitFor } from '../helpers/network.js';
import { startMirror } from '../helpers/mirror-server.js';
import { v, fx, image, keyOf, plainConfig, P, mirror, mirrors, dir, open, readAll, setupNetworkSuite } from '../helpers/network-suite.js';

setupNetworkSuite();

/** make-image of `jigdo` into `d` with one round over the mirrors (no retries): every part found, the image exact. */
async function makeExactImage(jigdo: string, d: string): Promise<void> {
  const o = await open(jigdo, path.join(d, 'cache'), { config: plainConfig, retries: '0' });
  try {
    const r = await makeImage(o.s, path.join(d, 'out.iso'));
    assert.deepEqual(r.missing, []);
    assert.equal(await fileMd5(path.join(d, 'out.iso')), v.imageMd5);
  } finally {
    await o.close();
  }
}

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
    await makeExactImage(jigdo, d);
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

  test("a part under several paths on one mirror: a path that fails (404, wrong size) leaves the mirror's other paths", async () => {
    const m = await mirror();
    const d = await dir('paths');
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    // Each listed first under a path that fails there: a file it does not have, one the mirror says is gone (404),
    // and another part's file (its size is not the part's); then under one that works.
    const text = (await readFile(jigdo, 'utf8'))
      .replace(/^(Z_NXgDcvsd283IRbMHv3LA=)(Parts:pool\/a-3k\.bin)$/m, '$1Parts:gone/a-3k.bin\n$1$2')
      .replace(/^(cJB2kkPBpFzPAQ83a2SWGg=Parts:extra\/c-200k-copy\.bin)$/m, '$1\ncJB2kkPBpFzPAQ83a2SWGg=Parts:pool/c-200k.bin')
      .replace(/^(RXKGjHKbCMGZBi6gaXVZWg=)(Parts:pool\/b-40k\.bin)$/m, '$1Parts:pool/a-3k.bin\n$1$2');
    assert.equal(text.split('\n').length, (await readFile(jigdo, 'utf8')).split('\n').length + 3, 'three paths added');
    await writeFile(jigdo, text);
    m.fault(P.c, { kind: 'status', code: 404 });
    await makeExactImage(jigdo, d);
    assert.equal(gets(m, '/parts/gone/a-3k.bin').length, 1, 'the missing path was asked once');
    assert.equal(gets(m, P.c).length, 1, 'the 404 path was asked once');
    for (const p of ['/parts/pool/c-200k.bin', P.b]) assert.equal(gets(m, p).length, 1, `${p}: the next path, from the same mirror`);
    assert.equal(gets(m, P.a).length, 2, 'a-3k.bin: asked for b (the wrong size), then for a');
    assert.equal((await assertCacheVerified(path.join(d, 'cache'))).length, 6);
  });

  test('a partial mirror given first keeps serving the parts it has after a run of 404s', async () => {
    // A local mirror with part of the archive, given before the .jigdo's: its 404s say it lacks those files, not
    // that it is failing. Counted as failures, 3 in a row demoted it, and the parts it has went to the other mirror.
    const d = await dir('partial');
    const { jigdo, image: want, partOffsets } = await manyParts(d, 60, 'http://127.0.0.1:9/');
    const all = path.join(d, 'tree', 'parts');
    const some = path.join(d, 'partial');
    await mkdir(some);
    // Read in this order: 10 it lacks before it delivered anything, 10 it has, a run of 30 it lacks, 10 it has.
    const lacks = (i: number): boolean => i < 10 || (i >= 20 && i < 50);
    const names = (await readdir(all)).sort();
    for (const [i, name] of names.entries()) if (!lacks(i)) await copyFile(path.join(all, name), path.join(some, name));
    const partial = await mirror(0, some);
    const full = await mirror(0, all);
    await writeFile(jigdo, (await readFile(jigdo, 'utf8')).replace(/^Parts=.*$/m, `Parts=${full.url}`));
    // As `--mirror Parts=URL`: tried first, and never second-guessed by the board's speed probes.
    const o = await open(jigdo, path.join(d, 'cache'), { config: plainConfig, retries: '0', mirror: [`Parts=${partial.url}`] });
    const wanted = await readFile(want);
    try {
      // One part at a time, each group last first: lone reads, so nothing is fetched ahead of them.
      for (const [from, to] of [[0, 10], [10, 20], [20, 50], [50, 60]] as const) {
        for (let i = to - 1; i >= from; i--) {
          const at = partOffsets[i]!;
          assert.ok((await o.s.reader.read(at, 4096)).equals(wanted.subarray(at, at + 4096)), `part ${i}`);
        }
      }
    } finally {
      await o.close();
    }
    const fromFull = names.filter((n, i) => !lacks(i) && gets(full, `/${n}`).length > 0);
    assert.deepEqual(fromFull, [], 'parts the partial mirror has came from it');
    assert.equal(names.filter((n, i) => lacks(i) && gets(full, `/${n}`).length === 1).length, 40, 'the 40 it lacks came from the full one');
  });
});

describe('a mirror that went down and came back', () => {
  test('a mirror that refuses connections for a moment (a web server restarting) is asked again a second later: reads wait for it, not fail', { timeout: 60_000 }, async () => {
    const m = await mirror();
    const port = Number(new URL(m.url).port);
    const d = await dir('restarting');
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    const o = await open(jigdo, path.join(d, 'cache'), { timeout: '10', retries: '2' });
    try {
      await m.close(); // connections refused from now on
      // Three parts read at once: three connections refused in a row, and the mirror is down.
      const parts = [P.a, P.b, P.c].map((file) => o.s.layout.parts.get(keyOf(o.s, file))!);
      const reads = parts.map((p) => o.s.reader.read(p.offsets[0]!, p.length));
      const t0 = Date.now();
      await waitFor(() => o.net.board.refusal(partsUri(m)) !== undefined, 10_000, 'the mirror to be down');
      mirrors.push(await startMirror({ root: fx.tree, port })); // back on the same port
      const got = await Promise.all(reads); // (the code before: "not answering" for each, for 15 s)
      for (const [i, p] of parts.entries()) assert.ok(got[i]!.equals(image.subarray(p.offsets[0]!, p.offsets[0]! + p.length)), `part ${i}`);
      assert.ok(Date.now() - t0 < 8000, `the reads took ${Date.now() - t0} ms`);
      assert.equal(o.net.board.refusal(partsUri(m)), undefined, 'the mirror is up again');
    } finally {
      await o.close();
    }
  });

  test("a part fetched in several streams after the down time: the probe is not cut by the part's other streams", { timeout: 60_000 }, async () => {
    const m = await mirror();
    const d = await dir('down-and-back');
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    m.fault('*', { kind: 'stall', afterBytes: 0 }); // each request a timeout (1 s here): three in a row, and it is down
    const o = await open(jigdo, path.join(d, 'cache'), { retries: '0' }); // 256 KiB ranges, 4 streams a part
    try {
      const part = (file: string) => o.s.layout.parts.get(keyOf(o.s, file))!;
      const e = part(P.e);
      await assert.rejects(o.s.reader.read(e.offsets[0]!, e.length), /not answering|no response|too slow|stalled|timeout/i);
      assert.ok(o.net.board.refusal(partsUri(m)), 'the mirror is down');
      m.fault('*', null); // back
      await sleep(16_000); // past the 15 s a down mirror is skipped: the next request probes it
      const dPart = part(P.d); // 1.5 MB: six ranges, fetched in four streams
      const got = await o.s.reader.read(dPart.offsets[0]!, dPart.length);
      assert.ok(got.equals(image.subarray(dPart.offsets[0]!, dPart.offsets[0]! + dPart.length)), 'the part, from the mirror that is back');
      assert.equal(o.net.board.refusal(partsUri(m)), undefined, 'the mirror is up again');
    } finally {
      await o.close();
    }
  });
});

