/**
 * Big parts are fetched as parallel ranges (256 KiB here, from the ranged config).
 * (Split from network.test.ts by concern; the shared setup is test/helpers/network-suite.ts.)
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startMirror, type RequestRecord } from '../helpers/mirror-server.js';
import { assertCacheVerified, gets, jigdoWithServers, partsUri, waitFor } from '../helpers/network.js';
import { fx, v, mirrors, P, dir, open, keyOf, setupNetworkSuite } from '../helpers/network-suite.js';

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
});
