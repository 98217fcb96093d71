/**
 * Unhashed parts in the disk cache (verify once for mirrors' parts, PartCache.commitUnhashed): each download gets
 * a name of its own; the job's match names only the copy it read, as it read it; a reader claims, hashes and names
 * one, removes a wrong one, and leaves one it could not hash; a checksum name already taken is never replaced.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PartCache } from '../../src/cache/part-cache.js';
import { checksumKey } from '../../src/format/checksum.js';
import { hashWholeFile, md5sum } from '../helpers/hash.js';
import { cacheFiles } from '../helpers/network.js';

let work: string;
let dirs = 0;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-unhashed-'));
});
after(() => rm(work, { recursive: true, force: true }));

const hashFile = hashWholeFile;

function newCache(hash = hashFile): PartCache {
  return new PartCache({ dir: path.join(work, `${++dirs}-cache`), hashFile: hash });
}

/** A part's bytes and names. */
function part(fill: number, size = 4096) {
  const bytes = Buffer.alloc(size, fill);
  const md5 = md5sum(bytes);
  return { bytes, md5, hex: md5.toString('hex'), key: checksumKey(md5) };
}

/** Writes `bytes` through a writer and commits them unhashed, as make-image does with a trusted mirror's part. */
async function storeUnhashed(cache: PartCache, hex: string, bytes: Buffer) {
  const begun = await cache.begin('parts', 'md5', hex);
  assert.ok('writer' in begun);
  await begun.writer.allocate(bytes.length);
  await begun.writer.fh.write(bytes, 0, bytes.length, 0);
  return begun.writer.commitUnhashed();
}

const shard = (cache: PartCache, hex: string): string => path.join(cache.dir, 'parts', 'md5', hex.slice(0, 2));
const names = async (cache: PartCache, hex: string): Promise<string[]> => (await readdir(shard(cache, hex)).catch(() => [] as string[])).sort();
const exists = (file: string): Promise<boolean> => stat(file).then(() => true, () => false);

test('each unhashed download has a name of its own; the match names the copy read, and only while it is unchanged', async () => {
  const cache = newCache();
  const p = part(1);
  const first = await storeUnhashed(cache, p.hex, p.bytes);
  const second = await storeUnhashed(cache, p.hex, p.bytes);
  assert.ok(first.deferred && second.deferred);
  assert.notEqual(first.path, second.path, 'two downloads of a part never share a name');
  assert.equal(path.basename(first.path).startsWith(`${p.hex}.`) && first.path.endsWith('.unverified'), true);

  // The second copy is replaced under its name (as a reused name would allow): it is not the copy read.
  await rm(second.path);
  await writeFile(second.path, part(9).bytes);
  await cache.confirmUnhashed([second]);
  assert.equal(await exists(path.join(shard(cache, p.hex), p.hex)), false, 'a file that is not the copy read gets no checksum name');

  await cache.confirmUnhashed([first]);
  assert.ok(await cache.lookupPart('md5', p.key, p.bytes.length), 'the copy read, unchanged, has its checksum name');
  assert.equal(await exists(first.path), false);
});

test('a checksum name already taken is kept: the unhashed copy goes, and the count with it', async () => {
  const cache = newCache();
  const p = part(2);
  const unhashed = await storeUnhashed(cache, p.hex, p.bytes);
  // Meanwhile another process fetched the part and committed it, hashed.
  const begun = await cache.begin('parts', 'md5', p.hex);
  assert.ok('writer' in begun);
  await begun.writer.fh.write(p.bytes, 0, p.bytes.length, 0);
  const named = await begun.writer.commit([['md5', p.md5]]);
  assert.ok(named);
  const before = (await cache.refreshStats()).bytes;
  await cache.confirmUnhashed([unhashed]);
  assert.deepEqual(await names(cache, p.hex), [p.hex]);
  assert.equal((await stat(named.path)).ino, named.ino, 'the named file was not replaced');
  assert.equal(cache.stats().bytes, before - p.bytes.length, 'the dropped copy is off the count');
});

test('a reader claims an unhashed file, hashes it, names a right one and removes a wrong one', async () => {
  const cache = newCache();
  const right = part(3);
  const wrong = part(4);
  const dir = shard(cache, right.hex);
  const wdir = shard(cache, wrong.hex);
  await storeUnhashed(cache, right.hex, right.bytes);
  const bad = Buffer.from(wrong.bytes);
  bad[10] = 0;
  await storeUnhashed(cache, wrong.hex, bad);

  const got = await cache.lookupPart('md5', right.key, right.bytes.length);
  assert.ok(got && !got.deferred);
  assert.equal(got.path, path.join(dir, right.hex));
  assert.deepEqual(await names(cache, right.hex), [right.hex]);
  assert.equal(await cache.lookupPart('md5', wrong.key, wrong.bytes.length), undefined);
  assert.deepEqual(await readdir(wdir).catch(() => []), [], 'the wrong one is removed');
  assert.equal(cache.stats().adopted, 1);
  assert.equal(cache.stats().removedBad, 1);
});

test('a reader names a copy of an unhashed file that it wrote and synced itself, not the writer\'s file', async () => {
  // The writer's background sync may have failed and been reported to the writer alone: a sync through a descriptor
  // opened later says nothing, and the writer removes the file by the name it had before the reader claimed it.
  const writer = newCache();
  const p = part(13, 300_000);
  const stored = await storeUnhashed(writer, p.hex, p.bytes);
  const writers = await stat(stored.path);
  const reader = new PartCache({ dir: writer.dir, hashFile }); // another process on the same cache
  const got = await reader.lookupPart('md5', p.key, p.bytes.length);
  assert.ok(got && !got.deferred);
  assert.equal(got.path, path.join(shard(reader, p.hex), p.hex));
  assert.notEqual((await stat(got.path)).ino, writers.ino, 'a file of its own');
  assert.ok((await readFile(got.path)).equals(p.bytes));
  assert.deepEqual(await names(reader, p.hex), [p.hex]);
  assert.deepEqual((await readdir(path.join(writer.dir, 'parts', 'tmp'))).filter((n) => n.endsWith('.partial')), [], 'no temporary copy left');
  await Promise.all([writer.close(), reader.close()]);
});

test('an unhashed file the reader cannot hash stays, for the next reader', async () => {
  const failing = newCache(async () => {
    throw new Error('the worker pool is closing');
  });
  const p = part(5);
  await storeUnhashed(failing, p.hex, p.bytes);
  assert.equal(await failing.lookupPart('md5', p.key, p.bytes.length), undefined);
  const left = await names(failing, p.hex);
  assert.equal(left.length, 1, `still there: ${left.join(', ')}`);
  assert.ok(left[0]!.endsWith('.unverified'));
  assert.equal(failing.stats().removedBad, 0);
  // The next reader (same folder, a working hash) names it.
  const next = new PartCache({ dir: failing.dir, hashFile });
  assert.ok(await next.lookupPart('md5', p.key, p.bytes.length));
  assert.deepEqual(await names(next, p.hex), [p.hex]);
});

test('an unhashed file whose background sync failed is removed: never named, never left for a later reader', async () => {
  const cache = newCache();
  const p = part(7);
  const begun = await cache.begin('parts', 'md5', p.hex);
  assert.ok('writer' in begun);
  await begun.writer.allocate(p.bytes.length);
  await begun.writer.fh.write(p.bytes, 0, p.bytes.length, 0);
  // The disk failed the writeback (EIO): a sync through a new descriptor could succeed later without the bytes.
  begun.writer.fh.datasync = () => Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
  const copy = await begun.writer.commitUnhashed();
  assert.equal(copy.deferred, true);
  await cache.confirmUnhashed([copy]);
  assert.deepEqual(await names(cache, p.hex), [], 'neither the checksum name nor an unhashed file');
  assert.equal(await cache.lookupPart('md5', p.key, p.bytes.length), undefined, 'a reader finds nothing to adopt');
  await cache.close();
});

test('two processes adopting unhashed copies of one part at once: one checksum name, the other copy goes, counted once', async () => {
  const writer = newCache();
  // Four parts, each raced once: any one race may happen to run one process after the other.
  for (let fill = 8; fill < 12; fill++) {
    const p = part(fill);
    // Both hashes end together, so that both processes name their copies at the same moment.
    let arrived = 0;
    let release!: () => void;
    const together = new Promise<void>((r) => (release = r));
    const barrier = async (file: string, kind: Parameters<typeof hashFile>[1]) => {
      if (++arrived === 2) release();
      await together;
      return hashFile(file, kind);
    };
    const a = new PartCache({ dir: writer.dir, hashFile: barrier });
    const b = new PartCache({ dir: writer.dir, hashFile: barrier }); // another process on the same cache
    await storeUnhashed(writer, p.hex, p.bytes);
    await storeUnhashed(writer, p.hex, p.bytes);
    await writer.close();
    const found = await Promise.all([a.lookupPart('md5', p.key, p.bytes.length), b.lookupPart('md5', p.key, p.bytes.length)]);
    assert.ok(found[0] && found[1], `part ${fill}: both find it`);
    assert.deepEqual((await names(a, p.hex)).filter((n) => n.startsWith(p.hex)), [p.hex], `part ${fill}: only the checksum name is left`);
    await Promise.all([a.close(), b.close()]);
  }
  const left = await cacheFiles(writer.dir);
  const ledger = JSON.parse(await readFile(path.join(writer.dir, 'parts', 'size.json'), 'utf8')) as { bytes: number; files: number };
  assert.deepEqual([ledger.bytes, ledger.files], [left.reduce((n, f) => n + f.size, 0), left.length], 'the shared count is what the cache holds');
  assert.equal(left.length, 4);
});
