/**
 * A part no mirror has: only its regions fail (UnavailableError naming the part, exit 1 for make-image), nothing
 * bad is cached, and a read over it fails at once without waiting for a slow part it also covers.
 * (Split from network.test.ts by concern; the shared setup is test/helpers/network-suite.ts.)
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { makeImage } from '../../src/build/make-image.js';
import { UnavailableError } from '../../src/format/errors.js';
import { runCli } from '../helpers/cli.js';
import { assertCacheVerified, gets, jigdoWithServers, partsUri } from '../helpers/network.js';
import { fx, v, image, plainConfig, P, mirror, dir, open, keyOf, setupNetworkSuite } from '../helpers/network-suite.js';

setupNetworkSuite();

describe('no mirror has a part', () => {
  test('only its regions fail: UnavailableError naming the part; nothing bad is cached', async () => {
    const a = await mirror();
    const b = await mirror();
    a.fault(P.e, { kind: 'status', code: 404 });
    b.fault(P.e, { kind: 'corrupt' });
    const d = await dir('none');
    const jigdo = await jigdoWithServers(v, [partsUri(a), partsUri(b)], d);
    const o = await open(jigdo, path.join(d, 'cache'), { retries: '0' });
    try {
      const key = keyOf(o.s, P.e);
      const r = await makeImage(o.s, path.join(d, 'out.iso'));
      assert.deepEqual(r.missing, [key]);
      const off = o.s.layout.parts.get(key)!.offsets[0]!;
      // Everything before and after the part reads fine and exactly.
      assert.ok((await o.s.reader.read(0, off)).equals(image.subarray(0, off)), 'bytes before the part');
      const after = off + 3_000_000;
      assert.ok((await o.s.reader.read(after, image.length - after)).equals(image.subarray(after)), 'bytes after the part');
      await assert.rejects(o.s.reader.read(off + 1000, 4096), (err: Error) => err instanceof UnavailableError && err.message.includes(key));
      assert.equal(o.net.stats().parts.failed >= 1, true);
    } finally {
      await o.close();
    }
    const files = await assertCacheVerified(path.join(d, 'cache'));
    assert.equal(files.length, 5, 'every other part cached; the unavailable one is not');

    // The CLI: exit 1, naming the part, no image written.
    const r = await runCli(['make-image', jigdo, '-o', path.join(d, 'cli.iso'), '--cache-dir', path.join(d, 'cache-cli'), '--config', plainConfig, '--retries', '0'], { timeoutMs: 30_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /1 part\(s\) missing/);
    assert.ok(r.stderr.includes(Buffer.from(fx.files.find((f) => f.path === 'parts/pool/e-3m.bin')!.md5, 'hex').toString('base64url')));
    assert.deepEqual((await readdir(d)).filter((n) => n.startsWith('cli.iso')), []);
  });

  test('a part whose only servers are ftp:// says that only http(s) is fetched (not that a label "ftp" is undefined)', async () => {
    const d = await dir('ftp');
    const jigdo = await jigdoWithServers(v, ['ftp://127.0.0.1/parts/'], d);
    const r = await runCli(['make-image', jigdo, '-o', path.join(d, 'out.iso'), '--cache-dir', path.join(d, 'cache'), '--config', plainConfig], { timeoutMs: 30_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ftp:\/\/127\.0\.0\.1\/parts\/[^ ]*: only http:\/\/ and https:\/\/ URLs are fetched/);
    assert.doesNotMatch(r.stderr, /label not defined/);
  });
});


describe('failed reads', () => {
  test('a read over a missing part fails at once, without waiting for a slow part it also covers', async () => {
    const m = await mirror();
    m.fault(P.e, { kind: 'status', code: 404 });
    m.fault(P.d, { kind: 'delay', ms: 6000 });
    const d = await dir('prompt-eio');
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    const o = await open(jigdo, path.join(d, 'cache'), { timeout: '20' });
    try {
      const span = (p: string) => {
        const file = fx.files.find((f) => `/parts/${f.path.replace(/^parts\//, '')}` === p)!;
        const part = o.s.layout.parts.get(Buffer.from(file.md5, 'hex').toString('base64url'))!;
        return [part.offsets[0]!, part.offsets[0]! + part.length];
      };
      const [d0, d1] = span(P.d);
      const [e0, e1] = span(P.e);
      const from = Math.min(d0!, e0!);
      const t0 = performance.now();
      await assert.rejects(o.s.reader.read(from, Math.max(d1!, e1!) - from), UnavailableError);
      const ms = performance.now() - t0;
      assert.ok(ms < 3000, `the read failed after ${ms.toFixed(0)} ms: it waited for the delayed part`);
      assert.ok(gets(m, P.e).length >= 1, 'the missing part was asked for');
    } finally {
      await o.close();
    }
  });
});
