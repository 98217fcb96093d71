/** cache/exclusive-name.ts: a name given only while it is free, or held by the very same file. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { link, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CacheFs } from '../../src/cache/cache-fs.js';
import { nameIfFree } from '../../src/cache/exclusive-name.js';

let work: string;
let n = 0;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-name-'));
});
after(() => rm(work, { recursive: true, force: true }));

/** The cache's calls, synchronous where the file system allows them, as in a cache. */
async function readyFs(dir: string): Promise<CacheFs> {
  const fs = new CacheFs(dir);
  await fs.ready;
  return fs;
}

async function folder(): Promise<string> {
  const dir = path.join(work, String(++n));
  await mkdir(dir);
  return dir;
}

test('a free name: given, and the old name goes', async () => {
  const dir = await folder();
  await writeFile(path.join(dir, 'a.unverified'), 'bytes');
  assert.equal(await nameIfFree(path.join(dir, 'a.unverified'), path.join(dir, 'a'), await readyFs(dir)), true);
  assert.deepEqual(await readdir(dir), ['a']);
  assert.equal(await readFile(path.join(dir, 'a'), 'utf8'), 'bytes');
});

test('a name another file holds: not given, both files stay as they were', async () => {
  const dir = await folder();
  await writeFile(path.join(dir, 'a.unverified'), 'ours');
  await writeFile(path.join(dir, 'a'), 'theirs');
  assert.equal(await nameIfFree(path.join(dir, 'a.unverified'), path.join(dir, 'a'), await readyFs(dir)), false);
  assert.deepEqual((await readdir(dir)).sort(), ['a', 'a.unverified']);
  assert.equal(await readFile(path.join(dir, 'a'), 'utf8'), 'theirs');
});

test('a name the same file holds already (a link that got through before): named, the other name goes', async () => {
  const dir = await folder();
  await writeFile(path.join(dir, 'a.mine.unverified'), 'bytes');
  await link(path.join(dir, 'a.mine.unverified'), path.join(dir, 'a'));
  assert.equal(await nameIfFree(path.join(dir, 'a.mine.unverified'), path.join(dir, 'a'), await readyFs(dir)), true);
  assert.deepEqual(await readdir(dir), ['a']);
});

test('a file that is gone: an error, nothing named', async () => {
  const dir = await folder();
  await assert.rejects(nameIfFree(path.join(dir, 'gone'), path.join(dir, 'a'), await readyFs(dir)), { code: 'ENOENT' });
  assert.deepEqual(await readdir(dir), []);
});
