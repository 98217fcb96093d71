/**
 * Verify once for parts from mirrors (issue 11 item 2): make-image hashes a mirror's parts until the mirror has
 * sent TRUST_AFTER_PARTS right ones, then caches its parts unhashed beside their checksum names, for the image
 * checksum to check; they get their names once it matched. A wrong part is then found by the image checksum,
 * its mirror named, and the part fetched again with every check on. What a killed make-image left unhashed is
 * hashed by the next reader before use (a mount never serves it unchecked), and the rerun keeps what is right.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, open as openFile, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeImage } from '../../src/build/make-image.js';
import { TRUST_AFTER_PARTS } from '../../src/network/mirror-board.js';
import { runCli } from '../helpers/cli.js';
import { md5hex } from '../helpers/hash.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { assertCacheVerified, cacheFiles, fileMd5, gets, jigdoWithServers, partsUri, sleep, trustedLaterMirror } from '../helpers/network.js';
import { SWEEP_MS } from '../../src/sources/unlinked-sweep.js';
import { dir, fx, image, keyOf, mirror, open, plainConfig, P, readAll, setupNetworkSuite, v, work } from '../helpers/network-suite.js';
import { makeUpgrade, requestsByPath, type Upgrade } from '../helpers/upgrade-fixture.js';

setupNetworkSuite();

let up: Upgrade;
let v2md5: string;
let v2mirror: Mirror;

/** Every file under the cache's part folders whose name is not a checksum (unhashed downloads). */
async function unhashedLeft(cacheDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const kind of ['md5', 'sha256']) {
    const base = path.join(cacheDir, 'parts', kind);
    for (const shard of await readdir(base).catch(() => [] as string[])) {
      for (const name of await readdir(path.join(base, shard))) if (!/^[0-9a-f]+$/.test(name)) out.push(name);
    }
  }
  return out;
}

/** The parts of v2 in image order, each with its path on the mirror. */
async function partsInOrder(d: string): Promise<Array<{ key: string; path: string }>> {
  const probe = await open(up.jigdo, path.join(d, 'probe-cache'), { offline: true, config: plainConfig });
  try {
    const parts = [...probe.s.layout.parts.values()].filter((p) => p.length > 0).sort((a, b) => a.offsets[0]! - b.offsets[0]!);
    return parts.map((p) => ({ key: p.key, path: probe.s.jigdo.parts.get(p.key)![0]!.uri.replace(/^Parts:/, '') }));
  } finally {
    await probe.close();
  }
}

describe('verify once, parts from mirrors', () => {
  // (Inside the suite: the file's own `before` (setupNetworkSuite) has made `work` by then.)
  before(async () => {
    up = await makeUpgrade(path.join(work, 'upgrade'));
    v2md5 = md5hex(await readFile(up.v2iso));
    v2mirror = await startMirror({ root: up.v2 }); // every part of v2 (26, more than TRUST_AFTER_PARTS)
  });
  after(() => v2mirror?.close());

  test('a mirror that proved right: its later parts are cached unhashed, then named once the image matched', async (t) => {
    assert.ok(up.parts > TRUST_AFTER_PARTS + 4, `the fixture has enough parts (${up.parts})`);
    const d = await dir('trusted');
    const cache = path.join(d, 'cache');
    const mirror = await trustedLaterMirror(up.v2); // some parts go unhashed, on a loaded machine too
    t.after(() => mirror.close());
    const o = await open(up.jigdo, cache, { mirror: [`Parts=${mirror.url}`], connections: '2', config: plainConfig });
    try {
      const r = await makeImage(o.s, path.join(d, 'out.iso'));
      assert.deepEqual(r.missing, []);
      const { parts } = o.net.stats();
      assert.ok(parts.unhashed > 0, `some parts went unhashed: ${parts.unhashed} of ${parts.fetched}`);
      assert.ok(parts.unhashed <= parts.fetched - TRUST_AFTER_PARTS, 'the first parts of the mirror were hashed');
      assert.equal(parts.mismatches, 0);
    } finally {
      await o.close();
    }
    assert.equal(await fileMd5(path.join(d, 'out.iso')), v2md5);
    // Every part under its checksum name, hashed here: nothing unconfirmed is left.
    const files = await assertCacheVerified(cache);
    assert.equal(files.length, (await partsInOrder(d)).length);
    assert.deepEqual(await unhashedLeft(cache), []);
  });

  test('a trusted mirror sends one wrong part: the image checksum finds it, the mirror is named, the part fetched again', async () => {
    // 20 ms a request: the mirror's first parts are hashed and committed long before the last one is asked for.
    const m = await startMirror({ root: up.v2, latencyMs: 20 });
    try {
      // The part fetched last: with one connection, parts are asked for in image order, and by then the
      // mirror has long proved right.
      const d = await dir('lies-late');
      const cache = path.join(d, 'cache');
      // (One whose name needs no escaping in a URL, so that the fault matches its request as sent.)
      const { key: lastKey, path: lastPath } = (await partsInOrder(d)).filter((p) => /^[\w./+-]+$/.test(p.path)).pop()!;
      m.fault(`/${lastPath}`, { kind: 'corrupt', times: 1 });

      const out = path.join(d, 'out.iso');
      // --keep-parts: the rebuild's copies are then named, and must all hash right.
      const r = await runCli(['make-image', up.jigdo, '-o', out, '--cache-dir', cache, '--config', plainConfig, '--mirror', `Parts=${m.url}`, '--connections', '1', '--keep-parts'], {
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await fileMd5(out), v2md5);
      assert.match(r.stderr, new RegExp(`served wrong bytes for part ${lastKey} \\(checksum mismatch, found by the image checksum\\)`));
      assert.equal(requestsByPath(m).get(lastPath), 2, 'the wrong part was fetched again (once)');
      for (const [p, count] of requestsByPath(m)) if (p !== lastPath) assert.equal(count, 1, `${p}: one request`);
      await assertCacheVerified(cache);
      assert.deepEqual(await unhashedLeft(cache), []);
    } finally {
      await m.close();
    }
  });

  test('parts read (in part, or whole) from cached copies that another process then evicted: the downloads taken after that are never named', async () => {
    const d = await dir('read-from-two');
    const cache = path.join(d, 'cache');
    const parts = await partsInOrder(d);
    // The largest part (whose name needs no escaping, so that the fault matches its request as sent): read in two halves.
    const sizes = await Promise.all(parts.map(async (p) => (await readFile(path.join(up.v2, p.path))).length));
    const [target, whole] = parts.filter((p, i) => /^[\w./+-]+$/.test(p.path) && sizes[i]! >= 4096).sort((a, b) => sizes[parts.indexOf(b)]! - sizes[parts.indexOf(a)]!);
    assert.ok(target && whole);
    const hexOf = (key: string): string => Buffer.from(key, 'base64url').toString('hex');
    // 1. Verified copies of both in the cache, as a mount or serve sharing the cache leaves them.
    const filler = await open(up.jigdo, cache, { mirror: [`Parts=${v2mirror.url}`], config: plainConfig });
    let need;
    try {
      need = filler.s.layout.parts.get(target.key)!;
      for (const p of [target, whole]) {
        const n = filler.s.layout.parts.get(p.key)!;
        await filler.s.reader.read(n.offsets[0]!, n.length);
      }
    } finally {
      await filler.close();
    }
    const cachedFile = async (key: string): Promise<string> => (await cacheFiles(cache)).find((f) => f.hex === hexOf(key))!.file;
    const cached = await cachedFile(target.key);
    // 2. make-image's checks: a mirror that has proved right (its downloads are then taken unhashed), and that sends
    //    both parts with a wrong byte in their first half.
    const m = await startMirror({ root: up.v2 });
    try {
      for (const p of [target, whole]) m.fault(`/${p.path}`, { kind: 'corrupt', at: 10, times: 1 });
      const o = await open(up.jigdo, cache, { mirror: [`Parts=${m.url}`], connections: '1', config: plainConfig });
      try {
        o.s.deferChecks(true);
        const others = parts.filter((p) => p.key !== target.key && p.key !== whole.key).slice(0, TRUST_AFTER_PARTS + 2);
        for (const p of others) {
          const n = o.s.layout.parts.get(p.key)!;
          await o.s.reader.read(n.offsets[0]!, n.length);
        }
        const half = need.length >> 1;
        const first = await o.s.reader.read(need.offsets[0]!, half); // from the cached copy
        // The other part is read whole from its cached copy.
        const w = o.s.layout.parts.get(whole.key)!;
        assert.ok((await o.s.reader.read(w.offsets[0]!, w.length)).equals(await readFile(path.join(up.v2, whole.path))));
        // 3. Another process evicts both copies; the sweep of unlinked files makes this one forget them.
        const wholeCached = await cachedFile(whole.key);
        await rm(cached);
        await rm(wholeCached);
        await sleep(SWEEP_MS * 2.5);
        const second = await o.s.reader.read(need.offsets[0]! + half, need.length - half); // downloaded, unhashed
        assert.ok(Buffer.concat([first, second]).equals(await readFile(path.join(up.v2, target.path))), 'what was read is the part');
        // The other is looked up again (a look-up ahead, as make-image's locating of every part makes) and not read.
        await o.s.parts.locate(whole.key);
        assert.ok(o.net.stats().parts.unhashed > 0, 'the mirror had proved right: its downloads went unhashed');
        for (const p of [target, whole]) assert.equal(requestsByPath(m).get(p.path), 1, `${p.path} was downloaded (with its wrong byte)`);
        // 4. The image matched (its bytes are right): the copies taken unhashed get their names, but not this one.
        await o.s.confirmDeferred();
      } finally {
        await o.close();
      }
    } finally {
      await m.close();
    }
    // Every file under a checksum name holds it; the download is left unnamed, for a later reader to hash (it is wrong).
    const named = (await cacheFiles(cache)).filter((f) => /^[0-9a-f]+$/.test(path.basename(f.file)));
    for (const f of named) assert.equal(createHash(f.kind).update(await readFile(f.file)).digest('hex'), f.hex, `${f.file} holds its checksum's bytes`);
    assert.ok(!named.some((f) => f.hex === hexOf(target.key) || f.hex === hexOf(whole.key)), 'neither part has a checksum name');
    assert.equal((await unhashedLeft(cache)).length, 2);
  });

  test('a cached copy evicted while a read of it still runs: the download taken for the part meanwhile is never named', async () => {
    const d = await dir('read-in-flight');
    const cache = path.join(d, 'cache');
    const parts = await partsInOrder(d);
    const sizes = await Promise.all(parts.map(async (p) => (await readFile(path.join(up.v2, p.path))).length));
    const target = parts.filter((p, i) => /^[\w./+-]+$/.test(p.path) && sizes[i]! >= 4096).sort((a, b) => sizes[parts.indexOf(b)]! - sizes[parts.indexOf(a)]!)[0]!;
    const filler = await open(up.jigdo, cache, { mirror: [`Parts=${v2mirror.url}`], config: plainConfig });
    const need = filler.s.layout.parts.get(target.key)!;
    try {
      await filler.s.reader.read(need.offsets[0]!, need.length);
    } finally {
      await filler.close();
    }
    const hex = Buffer.from(target.key, 'base64url').toString('hex');
    const cached = (await cacheFiles(cache)).find((f) => f.hex === hex)!.file;
    const half = need.length >> 1;
    // The next FileHandle.read once armed waits to be let go: a read "in flight" (a slow disk, a busy thread pool).
    const probe = await openFile(cached);
    const handleProto = Object.getPrototypeOf(probe) as { read: (...a: unknown[]) => Promise<unknown> };
    await probe.close();
    const realRead = handleProto.read;
    let armed = false;
    let entered!: () => void;
    const inFlight = new Promise<void>((r) => (entered = r));
    let letGo!: () => void;
    const gate = new Promise<void>((r) => (letGo = r));
    handleProto.read = async function (this: unknown, ...a: unknown[]) {
      if (armed) {
        armed = false;
        entered();
        await gate;
      }
      return realRead.apply(this, a);
    };
    const m = await startMirror({ root: up.v2 });
    try {
      m.fault(`/${target.path}`, { kind: 'corrupt', at: half + 10, times: 1 }); // in the half the held read takes
      const o = await open(up.jigdo, cache, { mirror: [`Parts=${m.url}`], connections: '1', config: plainConfig });
      try {
        o.s.deferChecks(true);
        for (const p of parts.filter((p) => p.key !== target.key).slice(0, TRUST_AFTER_PARTS + 2)) {
          const n = o.s.layout.parts.get(p.key)!;
          await o.s.reader.read(n.offsets[0]!, n.length);
        }
        armed = true;
        const second = o.s.reader.read(need.offsets[0]! + half, need.length - half); // from the cached copy, held
        await inFlight;
        await rm(cached); // another process evicts it; the sweep makes this one forget it
        await sleep(SWEEP_MS * 2.5);
        const first = await o.s.reader.read(need.offsets[0]!, half); // downloaded, unhashed, its second half wrong
        letGo();
        assert.ok(Buffer.concat([first, await second]).equals(await readFile(path.join(up.v2, target.path))), 'what was read is the part');
        assert.equal(requestsByPath(m).get(target.path), 1, 'the part was downloaded (with its wrong byte)');
        await o.s.confirmDeferred();
      } finally {
        letGo();
        await o.close();
      }
    } finally {
      handleProto.read = realRead;
      await m.close();
    }
    const named = (await cacheFiles(cache)).filter((f) => /^[0-9a-f]+$/.test(path.basename(f.file)));
    for (const f of named) assert.equal(createHash(f.kind).update(await readFile(f.file)).digest('hex'), f.hex, `${f.file} holds its checksum's bytes`);
  });

  test('after a wrong image, copies gone from a small cache blame no mirror; the wrong local copy is named', async () => {
    const d = await dir('blame-only-wrong');
    const cache = path.join(d, 'cache');
    // A copy at the place the .jigdo names (taken unhashed too) with the right size and wrong bytes: the image
    // comes out wrong, and every part is hashed again. The cache holds a quarter of the parts: most of the
    // mirror's copies have been evicted by then, and cannot be read.
    const [first] = await partsInOrder(d);
    const local = path.join(d, 'local');
    const wrong = await readFile(path.join(up.v2, first!.path));
    wrong.writeUInt8(wrong.readUInt8(wrong.length >> 1) ^ 0xff, wrong.length >> 1);
    await mkdir(path.dirname(path.join(local, first!.path)), { recursive: true });
    await writeFile(path.join(local, first!.path), wrong);
    const out = path.join(d, 'out.iso');
    const r = await runCli(
      ['make-image', up.jigdo, '-o', out, '--cache-dir', cache, '--config', plainConfig, '--mirror', `Parts=${v2mirror.url}`, '--local', `Parts=${local}`, '--cache-size', '200K', '--connections', '2'],
      { timeoutMs: 60_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fileMd5(out), v2md5);
    assert.match(r.stderr, new RegExp(`${first!.path.replace(/[.+]/g, '\\$&')}: does not hold part ${first!.key}`));
    // The copies evicted meanwhile are not hashed again: the reader forgets a copy when the cache evicts it (PartStore.gone,
    // since the cache makes room for downloads: disk-room.ts), where it used to find it gone ("cannot be read") here.
    assert.doesNotMatch(r.stderr, /served wrong bytes/, 'no mirror is blamed for a copy that vanished');
    const kept = await assertCacheVerified(cache);
    assert.ok(kept.reduce((n, f) => n + f.size, 0) <= 200 << 10, 'the cache kept to its 200K: copies were evicted');
  });

  test('unhashed downloads a killed job left: a reader hashes them first, keeps the right one, drops the wrong one', async () => {
    const m = await mirror();
    const d = await dir('left-unhashed');
    const cache = path.join(d, 'cache');
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    // As a make-image killed before its image checksum leaves them: named after a process that is gone.
    const leave = async (p: string, bytes: Buffer): Promise<void> => {
      const hex = fx.files.find((f) => `/parts/${f.path.replace(/^parts\//, '')}` === p)!.md5;
      const shard = path.join(cache, 'parts', 'md5', hex.slice(0, 2));
      await mkdir(shard, { recursive: true });
      await writeFile(path.join(shard, `${hex}.00000000-999999999-0badf00d.unverified`), bytes);
    };
    const partBytes = async (p: string): Promise<Buffer> => readFile(path.join(fx.tree, p));
    await leave(P.a, await partBytes(P.a));
    const wrong = await partBytes(P.b);
    wrong.writeUInt8(wrong.readUInt8(100) ^ 0xff, 100); // right size, wrong bytes: what a lying mirror sent before the job was killed
    await leave(P.b, wrong);

    const o = await open(jigdo, cache, { config: plainConfig }); // a mount's reader: no verify-once
    try {
      keyOf(o.s, P.a);
      assert.ok((await readAll(o.s.reader)).equals(image), 'the reader serves the exact image');
      assert.equal(gets(m, P.a).length, 0, 'the right unhashed part was hashed and used');
      assert.equal(gets(m, P.b).length, 1, 'the wrong one was fetched again');
      const { cache: stats } = o.net.stats();
      assert.equal(stats.adopted, 1);
      assert.equal(stats.removedBad, 1);
    } finally {
      await o.close();
    }
    assert.equal((await assertCacheVerified(cache)).length, 6);
    assert.deepEqual(await unhashedLeft(cache), []);
    assert.equal((await cacheFiles(cache)).length, 6);
  });
});
