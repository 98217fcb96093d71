/**
 * Big parts are fetched as parallel ranges (256 KiB here, from the ranged config).
 * (Split from network.test.ts by concern; the shared setup is test/helpers/network-suite.ts.)
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { assertOk, runCli } from '../helpers/cli.js';
import { startMirror, type RequestRecord } from '../helpers/mirror-server.js';
import { assertCacheVerified, fileMd5, gets, jigdoWithServers, partsUri, waitFor } from '../helpers/network.js';
import { fx, v, mirror, mirrors, P, dir, open, keyOf, setupNetworkSuite } from '../helpers/network-suite.js';

setupNetworkSuite();

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

  test('a big part looked up ahead of a sequential reader comes in one request, hashed as it arrives', async () => {
    const m = await startMirror({ root: fx.tree });
    mirrors.push(m);
    const d = await dir('ahead');
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    const o = await open(jigdo, path.join(d, 'cache'));
    const key = keyOf(o.s, P.e);
    try {
      o.s.parts.prefetch([key]); // what the reader does ahead of a stream (ImageReader.readAhead)
      await waitFor(() => o.s.parts.isLocated(key), 20_000, 'the part fetched ahead');
    } finally {
      await o.close();
    }
    const requests = gets(m, P.e);
    const size = o.s.layout.parts.get(key)!.length;
    assert.equal(requests.length, 1, `one request, not ranges: ${requests.map((r) => r.range).join(', ')}`);
    assert.ok(requests[0]!.range === undefined || requests[0]!.range === `bytes=0-${size - 1}`, `the whole part: ${requests[0]!.range}`);
    assert.equal((await assertCacheVerified(path.join(d, 'cache'))).length, 1);
  });

  test('a part in more parallel ranges than 10 (streams-per-part = 16): no listener warning, the image right', async () => {
    // Each stream of a part listens on the part's one abort signal while its request runs: with more than
    // 10 at once Node printed "MaxListenersExceededWarning: Possible EventTarget memory leak detected".
    const m = await mirror();
    const d = await dir('many-streams');
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    const config = path.join(d, 'many.ini');
    await writeFile(config, '[network]\nrange-size = 64K\nstreams-per-part = 16\n');
    const out = path.join(d, 'image.iso');
    const r = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'cache'), '--config', config, '--connections', '16'], { timeoutMs: 60_000 });
    assertOk(r);
    assert.doesNotMatch(r.stderr, /Warning/, r.stderr);
    assert.equal(await fileMd5(out), v.imageMd5);
    assert.ok(gets(m, P.e).filter((q) => q.range).length >= 16, 'the 3 MB part came in many ranges');
  });
});

