// Checks that test/helpers/fixtures.ts produced what the other tests rely on: every variant's
// files, recorded image checksums, the libjte zero-length part, and one part at two offsets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  buildFixtures, EMPTY_MD5_B64, jigdoWithPartsUri, PARTS_LABEL, PARTS_URI, VARIANT_NAMES,
  type FixtureSet, type FixtureVariant,
} from './fixtures.js';

const execFileP = promisify(execFile);

/** jigdo-Base64 (spec §4.5) of a hex digest: base64url without padding. */
const b64 = (hex: string): string => Buffer.from(hex, 'hex').toString('base64url');

async function fixtures(): Promise<FixtureSet> {
  return buildFixtures();
}

async function jigdoLs(template: string): Promise<string[][]> {
  const { stdout } = await execFileP('jigdo-file', ['ls', `--template=${template}`]);
  return stdout.trim().split('\n').map((l) => l.trim().split(/\s+/));
}

/** Id of the first raw-data part: the 4 bytes after the third '\n' of the header (spec §2.1). */
async function firstPartId(template: string): Promise<string> {
  const fh = await open(template, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(512), 0, 512, 0);
    let pos = -1;
    for (let n = 0; n < 3; n++) pos = buffer.indexOf(0x0a, pos + 1);
    return buffer.subarray(pos + 1, Math.min(pos + 5, bytesRead)).toString('latin1');
  } finally {
    await fh.close();
  }
}

async function fileHashes(path: string): Promise<{ md5: string; sha256: string; size: number }> {
  const data = await readFile(path);
  return {
    md5: createHash('md5').update(data).digest('hex'),
    sha256: createHash('sha256').update(data).digest('hex'),
    size: data.length,
  };
}

test('buildFixtures builds (or reuses) the set and memoises it', async () => {
  const t0 = Date.now();
  const set = await fixtures();
  const ms = Date.now() - t0;
  console.log(`fixtures in ${set.dir}: ${ms} ms now, original build ${set.buildMs} ms`);
  assert.ok(set.buildMs < 60_000, `fixture build took ${set.buildMs} ms`);
  assert.equal(await fixtures(), set, 'second call in the same process returns the memoised set');
  assert.deepEqual(Object.keys(set.variants).sort(), [...VARIANT_NAMES].sort());
});

test('tree holds the intended kinds of files, with deterministic content', async () => {
  const set = await fixtures();
  const byPath = new Map(set.files.map((f) => [f.path, f]));
  for (const f of set.files) {
    assert.equal((await stat(f.absPath)).size, f.size, f.path);
  }
  // Pseudo-random content is a pure function of the seed, so these never change.
  assert.equal(byPath.get('parts/pool/a-3k.bin')?.md5, '67f35780372fb1ddbcdc845b307bf72c');
  assert.equal(byPath.get('parts/pool/e-3m.bin')?.md5, 'ab1df46791953444022b06bed28034b2');
  assert.equal(byPath.get('raw/zeros-and-text.bin')?.md5, '0aaccd0a6c54f5588cb9f690ff9b7625');

  const parts = set.files.filter((f) => f.isPart);
  assert.ok(parts.some((f) => f.size === 0), 'an empty part');
  assert.ok(parts.filter((f) => f.size > 0 && f.size < 1024).length >= 3, 'tiny parts');
  assert.ok(parts.some((f) => f.size >= 3_000_000), 'a multi-megabyte part');
  const md5s = parts.map((f) => f.md5);
  assert.equal(new Set(md5s).size, md5s.length - 1, 'exactly one duplicated part');
  assert.ok(set.files.some((f) => !f.isPart && f.size > 2 * 1024 * 1024), 'compressible raw data');
});

test('every variant has jigdo, template, image and correct recorded checksums', async () => {
  const set = await fixtures();
  const hashed = new Map<string, Awaited<ReturnType<typeof fileHashes>>>();
  for (const v of Object.values(set.variants)) {
    for (const f of [v.jigdo, v.jigdoOriginal, v.template]) assert.ok((await stat(f)).size > 0, `${v.name}: ${f}`);
    const head = (await readFile(v.template)).subarray(0, 24).toString('latin1');
    assert.equal(head, 'JigsawDownload template ', `${v.name}: template header`);
    assert.equal(await firstPartId(v.template), v.compression === 'bzip2' ? 'BZIP' : 'DATA', `${v.name}: part id`);

    let h = hashed.get(v.image);
    if (!h) hashed.set(v.image, (h = await fileHashes(v.image)));
    assert.equal(v.imageMd5, h.md5, `${v.name}: imageMd5`);
    assert.equal(v.imageSha256, h.sha256, `${v.name}: imageSha256`);
    assert.equal(v.imageSize, h.size, `${v.name}: imageSize`);
    assert.equal(v.partsDir, set.partsDir);
    assert.equal(v.makeImageVerified, v.name !== 'jte-md5-gzip', `${v.name}: make-image verification`);
  }
});

test('.jigdo files: [Servers] Parts= URI, checksum kind, template checksum', async () => {
  const set = await fixtures();
  for (const v of Object.values(set.variants)) {
    const text = await readFile(v.jigdo, 'utf8');
    const servers = text.split(/^\[Servers\]\s*$/m)[1]?.split(/^\[/m)[0] ?? '';
    assert.match(servers, new RegExp(`^${PARTS_LABEL}=${PARTS_URI.replace(/[.]/g, '\\.')}$`, 'm'), `${v.name}: [Servers]`);
    const t = await fileHashes(v.template);
    if (v.checksum === 'sha256') {
      assert.match(text, /^Version=2\.0$/m, v.name);
      assert.match(text, new RegExp(`^Template-SHA256Sum=${b64(t.sha256)} ?$`, 'm'), v.name);
    } else {
      assert.match(text, /^Version=1\.[12]$/m, v.name);
      assert.match(text, new RegExp(`^Template-MD5Sum=${b64(t.md5)} ?$`, 'm'), v.name);
    }
    // Every [Parts] line points below partsDir through the Parts label.
    for (const m of text.matchAll(/^([A-Za-z0-9_-]{22,43})=Parts:(\S+)$/gm)) {
      const rel = m[2] ?? '';
      const f = set.files.find((x) => x.path === `parts/${rel}`);
      assert.ok(f, `${v.name}: ${rel} is in the tree`);
      assert.equal(m[1], b64(v.checksum === 'md5' ? f.md5 : f.sha256), `${v.name}: key of ${rel}`);
    }
  }
});

test('jte-md5-gzip lists the empty file and tiny parts; libjte quirks are kept in the original', async () => {
  const set = await fixtures();
  const v = set.variants['jte-md5-gzip'];
  const text = await readFile(v.jigdo, 'utf8');
  assert.match(text, new RegExp(`^${EMPTY_MD5_B64}=Parts:tiny/empty$`, 'm'));
  assert.match(text, /^Filename=jte-md5-gzip\.iso$/m);
  assert.match(text, /^Template=jte-md5-gzip\.template$/m);
  const orig = await readFile(v.jigdoOriginal, 'utf8');
  assert.match(orig, /^Filename=stdio:jte-md5-gzip\.iso$/m);
  assert.match(orig, /^Template=http:\/\/localhost\/jte-md5-gzip\.template$/m);
  assert.match(orig, /\[Servers\]\s*$/, 'libjte writes an empty [Servers] last');

  const ls = await jigdoLs(v.template);
  const zero = ls.find((l) => l[0] === 'need-file-md5' && l[2] === '0');
  assert.ok(zero, 'a zero-length entry');
  assert.equal(zero[3], EMPTY_MD5_B64);
  assert.ok(ls.some((l) => l[0] === 'need-file-md5' && Number(l[2]) > 0 && Number(l[2]) < 1024), 'a tiny entry');
});

test('the duplicated file is one part at two offsets in jf-md5-gzip', async () => {
  const set = await fixtures();
  const dup = set.files.find((f) => f.path === 'parts/extra/c-200k-copy.bin');
  assert.ok(dup);
  const ls = await jigdoLs(set.variants['jf-md5-gzip'].template);
  const hits = ls.filter((l) => l[0] === 'need-file-md5' && l[3] === b64(dup.md5));
  assert.equal(hits.length, 2);
  assert.notEqual(hits[0]?.[1], hits[1]?.[1], 'different image offsets');
  // jigdo-file lists the checksum once in the .jigdo.
  const jigdo = await readFile(set.variants['jf-md5-gzip'].jigdo, 'utf8');
  assert.equal(jigdo.split('\n').filter((l) => l.startsWith(`${b64(dup.md5)}=`)).length, 1);
});

test('nomatch is one raw region; ext4 matches every part of at least 1024 bytes', async () => {
  const set = await fixtures();
  const nm = await jigdoLs(set.variants.nomatch.template);
  assert.deepEqual(nm.map((l) => l[0]), ['in-template', 'image-info-md5']);
  assert.equal(Number(nm[0]?.[2]), set.variants.nomatch.imageSize);

  const ext4: FixtureVariant = set.variants.ext4;
  const ls = await jigdoLs(ext4.template);
  const matched = new Set(ls.filter((l) => l[0] === 'need-file-md5').map((l) => l[3]));
  for (const f of set.files.filter((x) => x.isPart && x.size >= 1024)) {
    assert.ok(matched.has(b64(f.md5)), `ext4 template matches ${f.path}`);
  }
});

test('jigdoWithPartsUri rewrites Parts= in a copy', async () => {
  const set = await fixtures();
  const out = await mkdtemp(join(tmpdir(), 'jigdofs-fixtest-'));
  try {
    const v = set.variants['jte-sha256-bzip2'];
    const j = await jigdoWithPartsUri(v, 'http://127.0.0.1:40000/p/', out);
    const text = await readFile(j, 'utf8');
    assert.match(text, /^Parts=http:\/\/127\.0\.0\.1:40000\/p\/$/m);
    assert.doesNotMatch(text, /8765/);
    assert.ok((await stat(join(out, 'jte-sha256-bzip2.template'))).size > 0);
    assert.match(await readFile(v.jigdo, 'utf8'), /8765/, 'the shared original is untouched');
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
