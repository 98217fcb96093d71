/**
 * A verified commit into the disk cache (PartCache.verifyAndCommit through CacheWriter.commit): the file is hashed
 * while its sync runs, gets its checksum name only once both are done and right, and the commit returns only once
 * the sync is over, whatever the hash said.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { link, mkdtemp, open, readdir, rm, stat, unlink, utimes } from 'node:fs/promises';
import { openUnchanged } from '../../src/sources/open-copy.js';
import { checksumKey } from '../../src/format/checksum.js';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PartCache } from '../../src/cache/part-cache.js';
import type { ChecksumKind } from '../../src/format/checksum.js';
import { hashWholeFile, md5sum } from '../helpers/hash.js';

let work: string;
let dirs = 0;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-commit-'));
});
after(() => rm(work, { recursive: true, force: true }));

/** A cache whose hashing calls `onHash` first; a writer holding `bytes`, ready to commit. */
async function written(bytes: Buffer, onHash: () => void = () => undefined) {
  const hashFile = (file: string, kind: ChecksumKind): Promise<Buffer> => {
    onHash();
    return hashWholeFile(file, kind);
  };
  const cache = new PartCache({ dir: path.join(work, `${++dirs}-cache`), hashFile });
  const sum = md5sum(bytes);
  const hex = sum.toString('hex');
  const begun = await cache.begin('parts', 'md5', hex);
  assert.ok('writer' in begun);
  await begun.writer.allocate(bytes.length);
  await begun.writer.fh.write(bytes, 0, bytes.length, 0);
  const names = async (): Promise<string[]> => readdir(path.join(cache.dir, 'parts', 'md5', hex.slice(0, 2))).catch(() => []);
  return { cache, writer: begun.writer, sum, hex, names };
}

/** `bytes` committed to `cache` as a part (verified), and its key. */
async function committed(cache: PartCache, bytes: Buffer) {
  const sum = md5sum(bytes);
  const begun = await cache.begin('parts', 'md5', sum.toString('hex'));
  assert.ok('writer' in begun);
  await begun.writer.allocate(bytes.length);
  await begun.writer.fh.write(bytes, 0, bytes.length, 0);
  const copy = await begun.writer.commit([['md5', sum]]);
  assert.ok(copy);
  return { copy, key: checksumKey(sum) };
}

test('a verified commit hashes the file while its sync runs, and names it once both are done', { timeout: 10_000 }, async () => {
  let hashed!: () => void;
  const hashStarted = new Promise<void>((resolve) => (hashed = resolve));
  const { cache, writer, sum, hex, names } = await written(Buffer.alloc(8192, 3), () => hashed());
  let synced = false;
  const realSync = writer.fh.datasync.bind(writer.fh);
  // The sync ends only once the hash has started: one after the other, this commit would never end.
  writer.fh.datasync = async () => {
    await hashStarted;
    await realSync();
    synced = true;
  };
  const copy = await writer.commit([['md5', sum]]);
  assert.ok(copy, 'the bytes matched');
  assert.equal(synced, true);
  assert.deepEqual(await names(), [hex]);
  await cache.close();
});

test('a failed sync gives no checksum name, even to bytes that hash right', async () => {
  const { cache, writer, sum, names } = await written(Buffer.alloc(4096, 5));
  writer.fh.datasync = () => Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
  await assert.rejects(writer.commit([['md5', sum]]), /EIO/);
  assert.deepEqual(await names(), [], 'nothing under the checksum name');
  await writer.abort();
  await cache.close();
});

test('a commit whose bytes do not match returns only once the sync is over (the caller may close the file next)', async () => {
  const { cache, writer, names } = await written(Buffer.alloc(4096, 6));
  let syncDone = false;
  const realSync = writer.fh.datasync.bind(writer.fh);
  writer.fh.datasync = async () => {
    await new Promise((resolve) => setTimeout(resolve, 100));
    await realSync();
    syncDone = true;
  };
  assert.equal(await writer.commit([['md5', Buffer.alloc(16)]]), undefined, 'a mismatch');
  assert.equal(syncDone, true, 'the sync had ended when the commit returned');
  assert.deepEqual(await names(), []);
  await writer.abort();
  await cache.close();
});

test('a committed file written to since (same size: dd conv=notrunc) is no longer taken for the part: removed', async () => {
  const bytes = Buffer.alloc(8192, 7);
  const logs: string[] = [];
  const cache = new PartCache({ dir: path.join(work, `${++dirs}-cache`), hashFile: hashWholeFile, log: (l) => logs.push(l) });
  const { copy, key } = await committed(cache, bytes);
  assert.ok(await cache.lookupPart('md5', key, bytes.length), 'as committed: a hit');
  assert.ok(await cache.lookupPart('md5', key, bytes.length), 'after its access time was refreshed: still a hit');
  const fh = await open(copy.path, 'r+');
  await fh.write(Buffer.from('XXXX'), 0, 4, 100);
  await fh.close();
  assert.equal(await cache.lookupPart('md5', key, bytes.length), undefined);
  assert.ok(logs.some((l) => l === `cache: ${copy.path} was written to since it was verified (its mtime): removed`), logs.join('\n'));
  await assert.rejects(stat(copy.path), { code: 'ENOENT' });
  await cache.close();
});

test('a cache file named or touched by another process meanwhile is still the verified copy (its ctime moved); one written to is not', async () => {
  const bytes = Buffer.alloc(8192, 9);
  const dir = path.join(work, `${++dirs}-cache`);
  const cache = new PartCache({ dir, hashFile: hashWholeFile });
  const other = new PartCache({ dir, hashFile: hashWholeFile }); // another process on the same cache
  const { copy: committedCopy, key } = await committed(cache, bytes);
  const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20)); // (the kernel's ctime clock is coarse)
  const opens = async (copy: typeof committedCopy): Promise<boolean> => (await openUnchanged(copy).then((fh) => fh.close().then(() => true), () => false));

  // The other names an adopted download: link to the checksum name, then unlink of its own name. Looked up between the
  // two, the part then failed to open (the probe's two make-images, one of them killed).
  const adopted = `${committedCopy.path}.other-name.unverified`;
  await link(committedCopy.path, adopted);
  const between = await cache.lookupPart('md5', key, bytes.length);
  assert.ok(between);
  await tick();
  await unlink(adopted);
  assert.equal(await opens(between), true, 'the unlink of its other name changed no byte');

  // The other refreshes its access time (old: it does), after this one looked it up.
  const old = Date.now() / 1000 - 3600;
  await utimes(committedCopy.path, old, (await stat(committedCopy.path)).mtimeMs / 1000);
  const mine = await cache.lookupPart('md5', key, bytes.length);
  assert.ok(mine);
  await utimes(committedCopy.path, old, (await stat(committedCopy.path)).mtimeMs / 1000);
  await tick();
  assert.ok(await other.lookupPart('md5', key, bytes.length));
  assert.notEqual((await stat(committedCopy.path)).ctimeMs, mine.ctimeMs, 'the refresh moved the ctime');
  assert.equal(await opens(mine), true, 'an access time refreshed by another is no change');

  // A write into it is (its mtime).
  const fh = await open(committedCopy.path, 'r+');
  await fh.write(Buffer.from('XXXX'), 0, 4, 100);
  await fh.close();
  assert.equal(await opens(mine), false);
  await Promise.all([cache.close(), other.close()]);
});
