// The .template parser (spec §2): every sample listed exactly like `jigdo-file ls` (golden files), the
// part index checked by decompressing it independently, and the §2.4 invariants on synthetic templates.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateSync, gunzipSync, inflateSync } from 'node:zlib';
import { BufferByteSource, FileByteSource } from '../../src/format/bytesource.js';
import { JigdoError } from '../../src/format/errors.js';
import { encodeB64 } from '../../src/format/base64.js';
import { MAX_DESC_ENTRIES, MAX_TEMPLATE_CHUNKS, parseDesc, parseTemplate, type Desc, type DescEntry, type TemplateInfo } from '../../src/format/template.js';
import { SAMPLES, SAMPLE_PARTS } from '../helpers/cli.js';
import { md5sum as md5 } from '../helpers/hash.js';
import { E, HEADER, chunk, data, descPart, template, u48 } from '../helpers/template-bytes.js';

const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-format-template-'));
after(() => rmSync(work, { recursive: true, force: true }));


// ---------------------------------------------------------------------------------------------
// `jigdo-file ls` format, as in the golden files: the type name padded to 18 columns (have-file: 17),
// then the offset right-aligned in 12, the length in ' ' + 12, the checksum in ' ' + 46, '  ' + rsync.

function lsRow(name: string, a: number, b: number, sum?: string, rsync?: string): string {
  let line = name.padEnd(name === 'have-file' ? 17 : 18) + String(a).padStart(12) + ' ' + String(b).padStart(12);
  if (sum !== undefined) line += ' ' + sum.padStart(46);
  if (rsync !== undefined) line += '  ' + rsync;
  return line;
}

function lsLine(e: DescEntry): string {
  switch (e.kind) {
    case 'raw':
      return lsRow('in-template', e.offset, e.length);
    case 'part': {
      const name = e.written ? (e.checksumKind === 'md5' ? 'have-file' : 'have-file-sha256') : `need-file-${e.checksumKind}`;
      // Obsolete types 3/4 have no rsync: jigdo-file shows it as 0 (spec §2.8).
      return lsRow(name, e.offset, e.length, encodeB64(e.sum), encodeB64(e.rsync ?? Buffer.alloc(8)));
    }
    case 'info':
      return lsRow(`image-info-${e.checksumKind}`, e.imageSize, e.blockLength, encodeB64(e.sum));
  }
}

const ls = (desc: Desc): string => desc.entries.map(lsLine).join('\n') + '\n';

async function parseFile(file: string): Promise<TemplateInfo> {
  const src = await FileByteSource.open(file);
  try {
    return await parseTemplate(src);
  } finally {
    await src.close();
  }
}

const SAMPLE_TEMPLATES: Array<[string, string]> = [
  ['jf-md5-gzip.template', 'golden-ls-jf-md5-gzip.txt'],
  ['jf-sha256-bzip2.template', 'golden-ls-jf-sha256-bzip2.txt'],
  ['jte-md5-gzip.template', 'golden-ls-jte-md5-gzip.txt'],
  ['jte-sha256-bzip2.template', 'golden-ls-jte-sha256-bzip2.txt'],
  ['jte-multipart.template', 'golden-ls-jte-multipart.txt'],
  ['big-4g/big-4g.template', 'big-4g/golden-ls.txt'],
];

for (const [template, golden] of SAMPLE_TEMPLATES) {
  test(`${template}: DESC listed like jigdo-file ls (${golden})`, async () => {
    const info = await parseFile(path.join(SAMPLES, template));
    const want = readFileSync(path.join(SAMPLES, golden), 'utf8').split('\n');
    const got = ls(info.desc).split('\n');
    for (let i = 0; i < Math.max(want.length, got.length); i++) assert.equal(got[i], want[i], `line ${i + 1}`);
  });
}

test('image.iso.tmp.gz: the DESC of a jigdo-lite .tmp file (type 7 = have-file) matches golden-tmp-ls.txt', async () => {
  const tmp = gunzipSync(readFileSync(path.join(SAMPLES, 'image.iso.tmp.gz')));
  assert.equal(tmp.length, 536778); // spec §6.2: 536,576 bytes of image plus a 202-byte DESC
  const desc = await parseDesc(new BufferByteSource('image.iso.tmp', tmp));
  assert.equal(desc.start, 536576);
  assert.equal(desc.length, 202);
  assert.equal(ls(desc), readFileSync(path.join(SAMPLES, 'golden-tmp-ls.txt'), 'utf8'));
  const written = desc.entries.filter((e) => e.kind === 'part' && e.written);
  assert.equal(written.length, 1);
  assert.equal(written[0]!.kind === 'part' && written[0]!.type, 7);
});

test('template headers and part indexes of the samples (spec §2.2, §2.5, §2.7)', async () => {
  const jf = await parseFile(path.join(SAMPLES, 'jf-md5-gzip.template'));
  assert.equal(jf.headerLine, 'JigsawDownload template 1.2 jigdo-file/0.8.0');
  assert.equal(jf.version, '1.2');
  assert.equal(jf.creator, 'jigdo-file/0.8.0');
  assert.equal(jf.headerLength, 124);
  assert.equal(jf.desc.start, 1874);
  assert.equal(jf.desc.length, 202);
  assert.equal(jf.desc.imageSize, 536576);
  assert.equal(jf.desc.blockLength, 1024);
  assert.equal(jf.desc.imageSum.toString('hex'), '784af77770a40eb11678baaea6484bff');
  assert.equal(jf.desc.rawLength, 67584 + 1144 + 3008 + 960 + 308880);
  const nonEmpty = jf.chunks.filter((c) => c.uncompressedLength > 0);
  assert.deepEqual(nonEmpty.map((c) => [c.compression, c.uncompressedLength]), [['zlib', 381576]]);

  const jte = await parseFile(path.join(SAMPLES, 'jte-md5-gzip.template'));
  assert.equal(jte.headerLength, 155);
  assert.equal(jte.headerLine, 'JigsawDownload template 1.1 libjte-2.0.0 '); // trailing space kept
  assert.equal(jte.version, '1.1');

  const multi = await parseFile(path.join(SAMPLES, 'jte-multipart.template'));
  assert.deepEqual(multi.chunks.map((c) => c.uncompressedLength), [1047176, 1048576, 937984]);
  assert.deepEqual(multi.chunks.map((c) => c.rawStart), [0, 1047176, 1047176 + 1048576]);

  const sha = await parseFile(path.join(SAMPLES, 'jf-sha256-bzip2.template'));
  assert.equal(sha.version, '2.0');
  assert.ok(sha.chunks.every((c) => c.compression === 'bzip2'));
  assert.equal(sha.desc.imageChecksumKind, 'sha256');
  assert.equal(sha.desc.imageSum.toString('hex'), 'e82307085e0703e4b6cf0fb384ccef0cde0536766136396f0615b4a338bd3240');

  const big = await parseFile(path.join(SAMPLES, 'big-4g/big-4g.template'));
  assert.equal(big.chunks.length, 5001);
  assert.ok(big.chunks.every((c) => c.compression === 'bzip2'));
  assert.equal(big.desc.imageSize, 4500100003);
  assert.equal(big.desc.rawLength, 4499997000 + 3);
  assert.equal(big.chunks.reduce((n, c) => n + c.uncompressedLength, 0), 4499997003);
  assert.equal(big.desc.length, 119);
});

test('the part index is right: chunks decompressed independently rebuild image.iso with the parts', async () => {
  // An independent mini-rebuilder over the parsed layout: zlib via inflateSync, bzip2 via the bzip2 tool.
  const image = readFileSync(path.join(SAMPLES, 'image.iso'));
  const byMd5 = new Map<string, Buffer>();
  const bySha = new Map<string, Buffer>();
  for (const name of ['a.bin', 'b.bin', 'sub/c.bin', 'small.txt', 'empty']) {
    const data = readFileSync(path.join(SAMPLE_PARTS, name));
    byMd5.set(createHash('md5').update(data).digest('hex'), data);
    bySha.set(createHash('sha256').update(data).digest('hex'), data);
  }
  const names = ['jf-md5-gzip', 'jte-md5-gzip', 'jf-sha256-bzip2', 'jte-sha256-bzip2'];
  for (const name of names) {
    const file = path.join(SAMPLES, `${name}.template`);
    const bytes = readFileSync(file);
    const info = await parseFile(file);
    const pieces = info.chunks.map((c) => {
      const payload = bytes.subarray(c.payloadOffset, c.payloadOffset + c.payloadLength);
      const data = c.compression === 'zlib' ? inflateSync(payload) : execFileSync('bzip2', ['-dc'], { input: payload, maxBuffer: 1 << 26 });
      assert.equal(data.length, c.uncompressedLength, `${name}: chunk ${c.index}`);
      return data;
    });
    const raw = Buffer.concat(pieces);
    const out: Buffer[] = [];
    for (const e of info.desc.entries) {
      if (e.kind === 'raw') out.push(raw.subarray(e.rawOffset, e.rawOffset + e.length));
      else if (e.kind === 'part') out.push((e.checksumKind === 'md5' ? byMd5 : bySha).get(e.sum.toString('hex'))!);
    }
    assert.ok(Buffer.concat(out).equals(image), `${name} rebuilds image.iso`);
  }
});

// ---------------------------------------------------------------------------------------------
// Synthetic templates

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

let serial = 0;
async function parseBytes(bytes: Buffer): Promise<{ info: TemplateInfo; file: string }> {
  const file = path.join(work, `synthetic-${++serial}.template`);
  writeFileSync(file, bytes);
  return { info: await parseFile(file), file };
}

/** Our listing, and when jigdo-file is installed, its own `ls` of the same bytes. */
function jigdoFileLs(file: string): string | undefined {
  return execFileSync('jigdo-file', ['ls', `--template=${file}`], { encoding: 'utf8' });
}

async function rejects(bytes: Buffer, pattern: RegExp): Promise<void> {
  const file = path.join(work, `bad-${++serial}.template`);
  writeFileSync(file, bytes);
  await assert.rejects(parseFile(file), (err: unknown) => {
    assert.ok(err instanceof JigdoError, `expected JigdoError, got ${String(err)}`);
    assert.ok(err.message.includes(file), `"${err.message}" does not name the file`);
    assert.match(err.message, pattern);
    return true;
  });
}

test('synthetic: one DATA part serving two type-2 entries around a part', async () => {
  const { info, file } = await parseBytes(template([data('hello world')], [E.t2(5), E.t6(100, md5('x')), E.t2(6), E.t5(111, md5('img'))]));
  assert.equal(info.headerLength, HEADER.length);
  assert.equal(info.creator, 'synthetic/1');
  assert.deepEqual(
    info.desc.entries.map((e) => [e.kind, e.kind === 'info' ? e.imageSize : e.offset, e.kind === 'info' ? e.blockLength : e.length]),
    [['raw', 0, 5], ['part', 5, 100], ['raw', 105, 6], ['info', 111, 1024]],
  );
  assert.deepEqual(info.desc.entries.filter((e) => e.kind === 'raw').map((e) => e.kind === 'raw' && e.rawOffset), [0, 5]);
  const expected = [
    lsRow('in-template', 0, 5),
    lsRow('need-file-md5', 5, 100, md5('x').toString('base64url'), 'AQIDBAUGBwg'),
    lsRow('in-template', 105, 6),
    lsRow('image-info-md5', 111, 1024, md5('img').toString('base64url')),
  ].join('\n') + '\n';
  assert.equal(ls(info.desc), expected);
  const theirs = jigdoFileLs(file);
  if (theirs !== undefined) assert.equal(ls(info.desc), theirs);
});

test('synthetic: empty (uncLen 0) DATA parts and a mixture of DATA and BZIP parts are accepted', async () => {
  const bz = execFileSync('bzip2', ['-9c'], { input: Buffer.from('0123456789') });
  const { info } = await parseBytes(
    template([data('abc'), chunk('DATA', deflateSync(Buffer.alloc(0)), 0), chunk('BZIP', bz, 10), data('')], [E.t2(13), E.t5(13, md5('img'))]),
  );
  assert.deepEqual(
    info.chunks.map((c) => [c.compression, c.uncompressedLength, c.rawStart]),
    [['zlib', 3, 0], ['zlib', 0, 3], ['bzip2', 10, 3], ['zlib', 0, 13]],
  );
});

test('synthetic: a template with no raw-data parts (one matched file)', async () => {
  const { info, file } = await parseBytes(template([], [E.t6(5000, md5('whole')), E.t5(5000, md5('whole'))]));
  assert.deepEqual(info.chunks, []);
  assert.equal(info.desc.rawLength, 0);
  const theirs = jigdoFileLs(file);
  if (theirs !== undefined) assert.equal(ls(info.desc), theirs);
});

test('synthetic: obsolete types 1, 3, 4 (no rsync, blockLen 0) and .tmp types 7 are listed like jigdo-file', async () => {
  const { info, file } = await parseBytes(template([data('hello world')], [E.t3(100, md5('x')), E.t2(11), E.t4(50, md5('y')), E.t1(161, md5('img'))]));
  const parts = info.desc.entries.filter((e) => e.kind === 'part');
  assert.deepEqual(parts.map((e) => e.kind === 'part' && [e.type, e.written, e.rsync]), [[3, false, undefined], [4, true, undefined]]);
  assert.equal(info.desc.blockLength, 0);
  const expected = [
    lsRow('need-file-md5', 0, 100, md5('x').toString('base64url'), 'AAAAAAAAAAA'),
    lsRow('in-template', 100, 11),
    lsRow('have-file', 111, 50, md5('y').toString('base64url'), 'AAAAAAAAAAA'),
    lsRow('image-info-md5', 161, 0, md5('img').toString('base64url')),
  ].join('\n') + '\n';
  assert.equal(ls(info.desc), expected);
  const theirs = jigdoFileLs(file);
  if (theirs !== undefined) assert.equal(ls(info.desc), theirs);

  const t7 = await parseBytes(template([data('hello world')], [E.t6(100, md5('x')), E.t2(11), E.t7(50, md5('y')), E.t5(161, md5('img'))]));
  const theirs7 = jigdoFileLs(t7.file);
  if (theirs7 !== undefined) assert.equal(ls(t7.info.desc), theirs7);
});

test('synthetic: earlier image-info entries are tolerated; the last one counts', async () => {
  const { info, file } = await parseBytes(template([data('hello world')], [E.t2(11), E.t5(5, md5('bogus'), 7), E.t5(11, md5('img'), 4096)]));
  assert.equal(info.desc.imageSize, 11);
  assert.equal(info.desc.blockLength, 4096);
  assert.deepEqual(info.desc.imageSum, md5('img'));
  const theirs = jigdoFileLs(file);
  if (theirs !== undefined) assert.equal(ls(info.desc), theirs);
});

test('synthetic: 48-bit lengths beyond 4 GiB and 2^40 are exact', async () => {
  const big = 2 ** 40 + 7;
  const { info, file } = await parseBytes(template([chunk('DATA', deflateSync(Buffer.from('x')), big)], [E.t6(3000, md5('head')), E.t2(big), E.t5(big + 3000, md5('img'))]));
  assert.equal(info.desc.imageSize, big + 3000);
  assert.equal(info.desc.rawLength, big);
  assert.equal(info.chunks[0]!.uncompressedLength, big);
  const theirs = jigdoFileLs(file);
  if (theirs !== undefined) assert.equal(ls(info.desc), theirs);
});

test('synthetic sha256 template (types 8/9)', async () => {
  const { info, file } = await parseBytes(template([data('hello')], [E.t9(2000, sha256('p')), E.t2(5), E.t8(2005, sha256('img'))]));
  assert.equal(info.desc.imageChecksumKind, 'sha256');
  const p = info.desc.entries[0]!;
  assert.ok(p.kind === 'part' && p.key === sha256('p').toString('base64url') && p.key.length === 43);
  const theirs = jigdoFileLs(file);
  if (theirs !== undefined) assert.equal(ls(info.desc), theirs);
});

test('synthetic: a DESC table of more entries than any image has, or a payload padded past its data, is refused', async () => {
  const n = MAX_DESC_ENTRIES;
  const zeros = chunk('DATA', deflateSync(Buffer.alloc(n)), n);
  await rejects(template([zeros], [...Array.from({ length: n }, () => E.t2(1)), E.t5(n, md5('img'))]), new RegExp(`more than ${n} entries`));
  await parseBytes(template([zeros], [E.t2(n), E.t5(n, md5('img'))])); // the same image in one entry
  const hello = deflateSync(Buffer.from('hello world'));
  const ok = [E.t2(11), E.t5(11, md5('img'))];
  await parseBytes(template([chunk('DATA', Buffer.concat([hello, Buffer.alloc(1000)]), 11)], ok)); // trailing bytes: jigdo-file's reader takes them
  await rejects(template([chunk('DATA', Buffer.concat([hello, Buffer.alloc(1 << 20)]), 11)], ok), /DATA part holds 1048595 compressed bytes for 11 bytes of data/);
  await rejects(template([chunk('DATA', Buffer.alloc(2000), 0), data('hello world')], ok), /2000 compressed bytes for 0 bytes/);
});

test(`synthetic: more than ${MAX_TEMPLATE_CHUNKS} DATA/BZIP parts is refused; that many parse (their headers read in windows)`, async () => {
  // 16-byte empty parts filling a 16 MB template were a million objects and 42 s of 16-byte reads.
  const empty = chunk('DATA', Buffer.alloc(0), 0);
  const ok = [E.t2(11), E.t5(11, md5('img'))];
  const { info } = await parseBytes(template([...Array.from({ length: MAX_TEMPLATE_CHUNKS - 1 }, () => empty), data('hello world')], ok));
  assert.equal(info.chunks.length, MAX_TEMPLATE_CHUNKS);
  assert.equal(info.chunks.at(-1)!.uncompressedLength, 11);
  await rejects(template([...Array.from({ length: MAX_TEMPLATE_CHUNKS }, () => empty), data('hello world')], ok), new RegExp(`more than ${MAX_TEMPLATE_CHUNKS} DATA/BZIP parts`));
});

test('synthetic: the §2.4 invariants and part layout are enforced with a JigdoError naming the file', async () => {
  const ok = [E.t2(11), E.t5(11, md5('img'))];
  const d = data('hello world');
  // Sanity: the base case parses.
  await parseBytes(template([d], ok));

  await rejects(template([d], [E.t2(11)].concat(E.t2(0), E.t2(0), E.t2(0), E.t2(0), E.t2(0))), /image information|image info/i); // last entry not image-info
  await rejects(template([d], [E.t5(11, md5('img')), E.t2(11)]), /image information|image info/i);
  await rejects(template([d], [E.t2(11), E.t5(12, md5('img'))]), /cover|size/i); // imgLen ≠ Σ lengths
  await rejects(template([], [E.t5(0, md5(''))]), /DESC|short|length/i); // zero-length image: 43-byte DESC < 45
  await rejects(template([d], [E.t2(11), Buffer.from([11, 0, 0, 0, 0, 0, 0]), E.t5(11, md5('img'))]), /type 11/);
  await rejects(template([d], [E.t2(11), Buffer.from([0, 0, 0, 0, 0, 0, 0]), E.t5(11, md5('img'))]), /type 0/);
  await rejects(template([d], [E.t2(11), E.t6(100, md5('p')), E.t5(111, md5('img')).subarray(0, 20)]), /runs past the end/); // entry overruns DESC
  await rejects(template([d, Buffer.from('stray')], ok), /stray|DATA|BZIP|fit/i);
  await rejects(template([d, Buffer.from('0123456789abcdefghij')], ok), /DATA or BZIP|found/);
  await rejects(template([data('hello world!')], ok), /raw-data parts hold 12 bytes but DESC needs 11/);
  await rejects(template([d], [E.t2(12), E.t5(12, md5('img'))]), /raw-data parts hold 11 bytes but DESC needs 12/);
  await rejects(template([d, d], ok), /raw-data parts hold 22/);
  await rejects(Buffer.concat([HEADER, Buffer.from('DATA'), u48(16), u48(11), descPart(ok)]), /no payload/);
  // A part header whose length runs past DESC.
  const long = Buffer.from(d);
  long.writeUIntLE(d.length + 100, 4, 6);
  await rejects(template([long], ok), /does not fit/);
  // partLen < 16.
  const short = Buffer.from(d);
  short.writeUIntLE(3, 4, 6);
  await rejects(template([short], ok), /does not fit|length/);
  // The two DESC lengths differ / the trailing one points outside the file / nowhere near DESC.
  const differ = template([d], ok);
  differ.writeUIntLE(99, differ.length - descPart(ok).length + 4, 6);
  await rejects(differ, /differ/);
  const huge = template([d], ok);
  huge.writeUIntLE(1e9, huge.length - 6, 6);
  await rejects(huge, /DESC length/);
  const off = template([d], ok);
  off.writeUIntLE(descPart(ok).length + 1, off.length - 6, 6);
  await rejects(off, /no DESC/);
  // Mixed kinds: an md5 part in a sha256 image.
  await rejects(template([d], [E.t6(100, md5('p')), E.t2(11), E.t8(111, sha256('img'))]), /mixes/);
  // Header problems.
  await rejects(template([d], ok, Buffer.from('JigsawDownload templat 1.2 x\r\nc\r\n\r\n')), /header/i);
  await rejects(Buffer.concat([Buffer.from('JigsawDownload template 1.2 x\r\n'), descPart(ok)]).subarray(0, 40), /header|short/i);
  await rejects(Buffer.alloc(0), /header|short/i);
  await rejects(Buffer.from('JigsawDownload template 1.2 x'), /short|header/i);
});
