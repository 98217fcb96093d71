/**
 * "Verified is a type" (issue 8): src/sources/verified-copy.ts is the only way to a VerifiedCopy, each of
 * its ways checks what it says, and the part store refuses anything it did not make.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { checksumKey, type ChecksumKind } from '../../src/format/checksum.js';
import { ImageLayout } from '../../src/image/layout.js';
import { HashIndex } from '../../src/sources/hash-index.js';
import { identityOf } from '../../src/sources/file-identity.js';
import { PartStore } from '../../src/sources/part-store.js';
import {
  assertVerified,
  commitIfMatches,
  underChecksumName,
  verifyLocalCopy,
  verifyWholeFile,
  type LocalCopy,
  type VerifiedCopy,
} from '../../src/sources/verified-copy.js';

let work: string;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-verified-'));
});
after(() => rm(work, { recursive: true, force: true }));

const sumOf = (kind: ChecksumKind, b: Buffer): Buffer => createHash(kind).update(b).digest();
const keyOf = (b: Buffer): string => checksumKey(sumOf('md5', b));

/** A hash function that counts its calls (an index hit must not hash). */
function countingHash(): { calls: number; hash: (file: string, kind: ChecksumKind, offset?: number, length?: number) => Promise<Buffer> } {
  const h = {
    calls: 0,
    hash: async (file: string, kind: ChecksumKind, offset = 0, length?: number): Promise<Buffer> => {
      h.calls++;
      const all = await readFile(file);
      return sumOf(kind, all.subarray(offset, length === undefined ? undefined : offset + length));
    },
  };
  return h;
}

test('local check: the right bytes give a copy with the identity they were hashed under; the index spares the next hash', async () => {
  const file = path.join(work, 'local.bin');
  const bytes = Buffer.from('the bytes of a part');
  await writeFile(file, bytes);
  const index = await HashIndex.load(undefined);
  const h = countingHash();
  const at = { file, offset: 0, length: bytes.length, whole: true };
  const first = await verifyLocalCopy(index, h.hash, 'md5', at, keyOf(bytes));
  assert.ok(first?.copy);
  assert.equal(first.hashed, true);
  assert.deepEqual({ ...first.copy }, { path: file, offset: 0, ...identityOf(await stat(file)), userFile: true });
  assertVerified(first.copy, 'test');
  const second = await verifyLocalCopy(index, h.hash, 'md5', at, keyOf(bytes));
  assert.ok(second?.copy);
  assert.equal(second.hashed, false);
  assert.equal(h.calls, 1, 'known from the index');
  assert.equal((await verifyLocalCopy(index, h.hash, 'md5', { ...at, length: bytes.length + 1 }, keyOf(bytes))), undefined, 'wrong size: not even hashed');
  assert.equal(h.calls, 1);
});

test('local check: wrong bytes of the right size give no copy, and a changed file says what it held', async () => {
  const file = path.join(work, 'changed.bin');
  const right = Buffer.from('right bytes!');
  await writeFile(file, right);
  const index = await HashIndex.load(undefined);
  const h = countingHash();
  const at = { file, offset: 0, length: right.length, whole: true };
  assert.ok((await verifyLocalCopy(index, h.hash, 'md5', at, keyOf(right)))?.copy);
  await new Promise((r) => setTimeout(r, 20)); // a ctime the file system can tell apart
  await writeFile(file, Buffer.from('wrong bytes!'));
  const after = await verifyLocalCopy(index, h.hash, 'md5', at, keyOf(right));
  assert.equal(after?.copy, undefined);
  assert.equal(after?.hashed, true);
  assert.equal(after?.was, keyOf(right), 'what the index had before the change');
});

test('local check: a region of a larger file (a jigdo-lite .tmp) is hashed alone', async () => {
  const file = path.join(work, 'image.tmp');
  const part = Buffer.from('PART');
  await writeFile(file, Buffer.concat([Buffer.from('head'), part, Buffer.from('tail')]));
  const index = await HashIndex.load(undefined);
  const found = await verifyLocalCopy(index, countingHash().hash, 'md5', { file, offset: 4, length: 4, whole: false }, keyOf(part));
  assert.equal(found?.copy?.offset, 4);
  const shifted = await verifyLocalCopy(index, countingHash().hash, 'md5', { file, offset: 5, length: 4, whole: false }, keyOf(part));
  assert.equal(shifted?.copy, undefined);
});

test('whole-file check (the template): any expected checksum matching is enough; none matching gives nothing', async () => {
  const file = path.join(work, 'x.template');
  const bytes = Buffer.from('a template');
  await writeFile(file, bytes);
  const index = await HashIndex.load(undefined);
  const h = countingHash();
  const wrongSha: [ChecksumKind, Buffer] = ['sha256', Buffer.alloc(32)];
  const copy = await verifyWholeFile(index, h.hash, file, [wrongSha, ['md5', sumOf('md5', bytes)]]);
  assert.ok(copy);
  assertVerified(copy, 'test');
  assert.equal(await verifyWholeFile(index, h.hash, file, [wrongSha]), undefined);
  assert.equal(h.calls, 2, 'sha256 and md5 hashed once each, then known from the index');
});

/** A hash function that renames `other` over the file before hashing it: a sync replacing the file meanwhile. */
function replacingHash(other: string): (file: string, kind: ChecksumKind, offset?: number, length?: number) => Promise<Buffer> {
  return async (file, kind, offset = 0, length) => {
    await rename(other, file);
    return sumOf(kind, (await readFile(file)).subarray(offset, length === undefined ? undefined : offset + length));
  };
}

test("a file replaced while it is hashed by name: the other file's checksum neither vouches for it nor goes into the index", async () => {
  const good = Buffer.from('the template the .jigdo names');
  const bad = Buffer.from('another build, other image!!!'); // the same length: only the bytes differ
  const file = path.join(work, 'swapped.template');
  await writeFile(file, bad);
  await writeFile(`${file}.new`, good);
  const index = await HashIndex.load(undefined);
  const before = identityOf(await stat(file));
  await assert.rejects(verifyWholeFile(index, replacingHash(`${file}.new`), file, [['md5', sumOf('md5', good)]]), /changed while it was being checked/);
  assert.equal(index.get(file, before, 'md5'), undefined);

  const part = path.join(work, 'swapped.bin');
  await writeFile(part, bad);
  await writeFile(`${part}.new`, good);
  const id = identityOf(await stat(part));
  const found = await verifyLocalCopy(index, replacingHash(`${part}.new`), 'md5', { file: part, offset: 0, length: bad.length, whole: true }, keyOf(good));
  assert.equal(found?.copy, undefined, 'no copy vouched for by the other file');
  assert.equal(index.get(part, id, 'md5'), undefined);
});

test('cache commit: placed only after a checksum matched; no checksum, no placing', async () => {
  const tmp = path.join(work, 'commit.partial');
  const bytes = Buffer.from('fetched bytes');
  await writeFile(tmp, bytes);
  const h = countingHash();
  let placed = 0;
  const place = async (): Promise<LocalCopy> => (placed++, { path: tmp, offset: 0, ...identityOf(await stat(tmp)) });
  assert.equal(await commitIfMatches(h.hash, tmp, [['md5', Buffer.alloc(16)]], place), undefined);
  assert.equal(await commitIfMatches(h.hash, tmp, [], place), undefined);
  assert.equal(placed, 0);
  const copy = await commitIfMatches(h.hash, tmp, [['sha256', Buffer.alloc(32)], ['md5', sumOf('md5', bytes)]], place);
  assert.equal(placed, 1);
  assert.ok(copy);
  assertVerified(copy, 'test');
});

test('a copy not made here is refused: hand-made, cast, or a verified one respread with another path', async () => {
  const file = path.join(work, 'named.bin');
  await writeFile(file, 'x');
  const verified = underChecksumName(file, await stat(file));
  assertVerified(verified, 'test');
  const handMade = { path: file, offset: 0, ...identityOf(await stat(file)) };
  assert.throws(() => assertVerified(handMade, 'hand'), /hand gave .* without verifying it/);
  assert.throws(() => assertVerified(handMade as VerifiedCopy, 'cast'), /without verifying it/);
  assert.throws(() => assertVerified({ ...verified, path: '/etc/passwd' }, 'spread'), /without verifying it/);
});

test('the part store serves nothing a provider did not get from verified-copy.ts', async () => {
  const file = path.join(work, 'unverified.bin');
  const bytes = Buffer.from('not checked');
  await writeFile(file, bytes);
  const key = keyOf(bytes);
  const layout = new ImageLayout(bytes.length, 'md5', Buffer.alloc(16), [{ kind: 'part', offset: 0, length: bytes.length, key }], new Map([[key, { key, sum: sumOf('md5', bytes), length: bytes.length, offsets: [0] }]]));
  const sneaky = { name: 'sneaky', find: async () => ({ path: file, offset: 0, ...identityOf(await stat(file)) }) as VerifiedCopy };
  const store = new PartStore(layout, [sneaky], () => undefined, false);
  try {
    await assert.rejects(store.readInto(key, 0, bytes.length, Buffer.alloc(bytes.length), 0), /sneaky gave .* without verifying it/);
  } finally {
    await store.close();
  }
});
