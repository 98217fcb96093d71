/** Local sources: --local label trees, --scan folders and jigdo-lite .tmp files, and the persistent hash index. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { loadJigdo, openImage, selectImage, type SourceOptions } from '../../src/engine/session.js';
import { findMissing } from '../../src/build/make-image.js';
import { runCli } from '../helpers/cli.js';
import { REPO } from '../helpers/cli.js';
import { md5hex as md5 } from '../helpers/hash.js';

const S = path.join(REPO, 'test', 'fixtures', 'samples');
const IMAGE_MD5 = '784af77770a40eb11678baaea6484bff';
let work: string;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-local-'));
});

after(() => rm(work, { recursive: true, force: true }));

const opts = (extra: Partial<SourceOptions>): SourceOptions => ({ local: [], scan: [], cacheDir: path.join(work, 'cache'), memory: 32 << 20, log: () => undefined, ...extra });

test('--local LABEL=DIR reads Label:path from DIR/path', async () => {
  const out = path.join(work, 'local.iso');
  const r = await runCli(['make-image', path.join(S, 'jf-md5-gzip.jigdo'), '-o', out, '--local', `Parts=${path.join(S, 'parts')}`, '--cache-dir', path.join(work, 'c1')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(md5(await readFile(out)), IMAGE_MD5);
});

test('--local never reads outside DIR, and a wrong file under the right name is not used', async () => {
  const dir = path.join(work, 'tree');
  await mkdir(path.join(dir, 'sub'), { recursive: true });
  // The right bytes, but reachable only by escaping the tree: must not be found.
  await copyFile(path.join(S, 'parts', 'a.bin'), path.join(work, 'outside.bin'));
  // A file with the right name and size but the wrong bytes: must not be served.
  const wrong = Buffer.alloc(40000, 7);
  await writeFile(path.join(dir, 'sub', 'b-copy.bin'), wrong);
  await copyFile(path.join(S, 'parts', 'sub', 'c.bin'), path.join(dir, 'sub', 'c.bin'));
  const jigdo = path.join(work, 'escape.jigdo');
  const text = (await readFile(path.join(S, 'jf-md5-gzip.jigdo'), 'utf8')).replace('Parts:a.bin', 'Parts:../outside.bin').replace('Template=jf-md5-gzip.template', `Template=${path.join(S, 'jf-md5-gzip.template')}`);
  await writeFile(jigdo, text);
  const j = await loadJigdo(jigdo);
  const s = await openImage(j, selectImage(j), opts({ local: [{ label: 'Parts', dir }] }));
  try {
    const missing = await findMissing(s);
    assert.deepEqual(missing.sort(), ['P6D_Q1IkDFd5tl9ZIOws9A', 'QiYNQ8Ib2_eZJAaaz5Uwtg']);
  } finally {
    await s.close();
  }
});

test('a jigdo-lite .tmp file found by --scan gives its written parts', async () => {
  const tmpFile = path.join(work, 'scan-tmp', 'image.iso.tmp');
  await mkdir(path.dirname(tmpFile), { recursive: true });
  await writeFile(tmpFile, gunzipSync(await readFile(path.join(S, 'image.iso.tmp.gz'))));
  const j = await loadJigdo(path.join(S, 'jf-md5-gzip.jigdo'));
  const s = await openImage(j, selectImage(j), opts({ scan: [path.dirname(tmpFile)] }));
  try {
    assert.deepEqual((await findMissing(s)).sort(), ['QiYNQ8Ib2_eZJAaaz5Uwtg', 'T_xAhGd5OOFDZW1sYi26Eg']);
    const need = s.layout.parts.get('P6D_Q1IkDFd5tl9ZIOws9A')!;
    const bytes = await s.reader.read(need.offsets[0]!, need.length);
    assert.ok(bytes.equals(await readFile(path.join(S, 'parts', 'a.bin'))));
    assert.deepEqual([...s.local.tmpFilesUsed], [tmpFile]);
  } finally {
    await s.close();
  }
});

test('the hash index makes a second run hash nothing, and a changed file is hashed again', async () => {
  const parts = path.join(work, 'parts-copy');
  await mkdir(path.join(parts, 'sub'), { recursive: true });
  for (const f of ['a.bin', 'b.bin', 'sub/c.bin', 'small.txt']) await copyFile(path.join(S, 'parts', f), path.join(parts, f));
  const cacheDir = path.join(work, 'index-cache');
  const j = await loadJigdo(path.join(S, 'jf-md5-gzip.jigdo'));
  const runOnce = async () => {
    const s = await openImage(j, selectImage(j), opts({ scan: [parts], cacheDir }));
    try {
      assert.deepEqual(await findMissing(s), []);
      return s.local.stats.hashed;
    } finally {
      await s.close();
    }
  };
  assert.equal(await runOnce(), 3, 'a.bin, b.bin and c.bin are hashed (small.txt has no part size)');
  assert.equal(await runOnce(), 0);
  const later = new Date(Date.now() + 5000);
  await utimes(path.join(parts, 'a.bin'), later, later);
  assert.equal(await runOnce(), 1);
});

test('a --local file with other bytes where the .jigdo names a part is named in the missing reason, every run (not "changed since it was hashed", not left out)', async () => {
  const dir = path.join(work, 'bad-tree');
  await mkdir(path.join(dir, 'sub'), { recursive: true });
  await copyFile(path.join(S, 'parts', 'a.bin'), path.join(dir, 'a.bin'));
  await copyFile(path.join(S, 'parts', 'sub', 'c.bin'), path.join(dir, 'sub', 'c.bin'));
  const bad = path.join(dir, 'sub', 'b-copy.bin');
  const good = await readFile(path.join(S, 'parts', 'sub', 'b-copy.bin'));
  await writeFile(bad, Buffer.from(good.map((b, i) => (i === 5000 ? b ^ 0xff : b)))); // same size, one byte off
  const args = (out: string) => ['make-image', path.join(S, 'jf-md5-gzip.jigdo'), '-o', path.join(work, out), '--local', `Parts=${dir}`, '--cache-dir', path.join(work, 'c-bad'), '--offline'];
  for (const run of ['first.iso', 'second.iso']) {
    const r = await runCli(args(run));
    assert.equal(r.code, 1, r.stderr);
    const line = r.stderr.split('\n').find((l) => l.startsWith('  QiYNQ8Ib2_eZJAaaz5Uwtg'));
    assert.ok(line?.includes(`${bad} does not hold this part (other bytes)`), `${run}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /changed since it was hashed/);
  }
  const missing = await runCli(['missing', path.join(S, 'jf-md5-gzip.jigdo'), '--local', `Parts=${dir}`, '--cache-dir', path.join(work, 'c-bad'), '--json']);
  assert.equal(missing.code, 0, missing.stderr);
  assert.equal((JSON.parse(missing.stdout) as { missing: number }).missing, 1);
});

test('a part a --scan folder has is taken from it, not by adopting an unhashed download of an interrupted run (a copy and a hash)', async () => {
  // The disk cache is asked before the --scan files by checksum name only; it adopts unhashed files after them.
  const cache = path.join(work, 'c-unhashed');
  const hex = md5(await readFile(path.join(S, 'parts', 'a.bin')));
  const unhashed = path.join(cache, 'parts', 'md5', hex.slice(0, 2), `${hex}.host-1-0a0b0c0d0e0f.unverified`);
  await mkdir(path.dirname(unhashed), { recursive: true });
  await copyFile(path.join(S, 'parts', 'a.bin'), unhashed);
  const out = path.join(work, 'scan-not-adopted.iso');
  const r = await runCli(['make-image', path.join(S, 'jf-md5-gzip.jigdo'), '-o', out, '--offline', '--scan', path.join(S, 'parts'), '--cache-dir', cache]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(md5(await readFile(out)), IMAGE_MD5);
  assert.equal(md5(await readFile(unhashed)), hex, 'the unhashed file is where it was, for a run that needs it');
});
