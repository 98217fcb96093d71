/** cache/size-ledger.ts: the cache's shared count, kept open between batches and written in place. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readlink, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CacheFs } from '../../src/cache/cache-fs.js';
import { SizeLedger } from '../../src/cache/size-ledger.js';

let work: string;
let dirs = 0;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-ledger-'));
});
after(() => rm(work, { recursive: true, force: true }));

async function newLedger(): Promise<{ dir: string; file: string; ledger: SizeLedger }> {
  const dir = path.join(work, `${++dirs}`);
  await mkdir(dir);
  const fs = new CacheFs(dir);
  await fs.ready;
  const file = path.join(dir, 'size.json');
  return { dir, file, ledger: new SizeLedger(file, fs) };
}

/** This process's open descriptors on `file`. */
async function openOn(file: string): Promise<number> {
  let n = 0;
  for (const fd of await readdir('/proc/self/fd')) if ((await readlink(`/proc/self/fd/${fd}`).catch(() => '')) === file) n++;
  return n;
}

const count = (bytes: number): string => JSON.stringify({ bytes, files: 1, at: 1 });

test('no file: nothing to read; a write creates it private, and what it wrote reads back as JSON', async () => {
  const { file, ledger } = await newLedger();
  assert.equal(await ledger.read(), undefined);
  assert.equal(await openOn(file), 0, 'a read opens nothing when there is no file');
  await ledger.write(count(5));
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.deepEqual(JSON.parse((await ledger.read())!), { bytes: 5, files: 1, at: 1 });
  assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { bytes: 5, files: 1, at: 1 }, 'what another process reads');
  await ledger.close();
});

test('one descriptor for every batch; a count written shorter or longer than the last one reads back whole', async () => {
  const { file, ledger } = await newLedger();
  for (const bytes of [123_456_789_012, 7, 98_765]) {
    await ledger.write(count(bytes));
    assert.equal(JSON.parse((await ledger.read())!).bytes, bytes);
    assert.equal(JSON.parse(await readFile(file, 'utf8')).bytes, bytes);
  }
  assert.equal(await openOn(file), 1, 'kept open, opened once');
  await ledger.close();
  assert.equal(await openOn(file), 0, 'closed');
});

test('what another process wrote in place is read; a longer file is cut to the count written over it', async () => {
  const { file, ledger } = await newLedger();
  await ledger.write(count(1));
  await writeFile(file, count(2)); // an older jigdofs: writeFile, shorter, same inode
  assert.equal(JSON.parse((await ledger.read())!).bytes, 2);
  await writeFile(file, JSON.stringify({ bytes: 3, files: 1, at: 1, pad: 'x'.repeat(300) }));
  assert.equal(JSON.parse((await ledger.read())!).bytes, 3);
  await ledger.write(count(4));
  assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { bytes: 4, files: 1, at: 1 }, 'no tail of the longer file left');
  await ledger.close();
});

test('a name that points to another file, or to none, has the file opened again: a count is never written where nobody looks', async () => {
  const { dir, file, ledger } = await newLedger();
  await ledger.write(count(1));
  const other = path.join(dir, 'other.json');
  await writeFile(other, count(2));
  await rename(other, file); // another inode at the name
  assert.equal(JSON.parse((await ledger.read())!).bytes, 2, 'the file at the name, not the one held');
  await ledger.write(count(3));
  assert.equal(JSON.parse(await readFile(file, 'utf8')).bytes, 3);

  await rm(dir, { recursive: true }); // the cache removed, and made again
  await mkdir(dir);
  assert.equal(await ledger.read(), undefined, 'the removed file is not read');
  await ledger.write(count(4));
  assert.equal(JSON.parse(await readFile(file, 'utf8')).bytes, 4, 'written at the name again');
  assert.equal(await openOn(file), 1);
  await ledger.close();
});

test('a file too long to be a count reads as none (the caller counts the files)', async () => {
  const { file, ledger } = await newLedger();
  await writeFile(file, Buffer.alloc(5000, 0x20));
  assert.equal(await ledger.read(), undefined);
  await ledger.close();
});

test('a symlink in place of the count is not written through (the file it led to, outside the cache, was truncated)', async () => {
  const { file, ledger } = await newLedger();
  const victim = path.join(work, `victim-${dirs}.txt`);
  const text = Array.from({ length: 3000 }, (_, i) => `${i + 1}\n`).join('');
  await writeFile(victim, text);
  await symlink(victim, file);
  await assert.rejects(ledger.write(count(5)));
  assert.equal(await ledger.read().catch(() => undefined), undefined, 'no count read through it either');
  assert.equal(await readFile(victim, 'utf8'), text);
  await ledger.close();
});
