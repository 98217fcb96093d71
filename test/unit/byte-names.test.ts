// Non-UTF-8 names in a .jigdo (issue 13, item 1): jigdo-file writes names as bytes (Latin-1, MacRoman,
// CP437 names of old discs). The parser keeps them (escaped bytes, src/format/byte-string.ts), URLs carry
// them percent-encoded, local candidates and the hash index keep them exactly; only binary data is refused.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseJigdo } from '../../src/format/jigdo.js';
import { JigdoError } from '../../src/format/errors.js';
import { baseName, resolveReference } from '../../src/format/location.js';
import { LabelMap, partCandidates } from '../../src/format/resolve.js';
import { decodeBytes, encodeBytes } from '../../src/format/byte-string.js';
import { HashIndex } from '../../src/sources/hash-index.js';
import { mirrorOf } from '../../src/network/mirror-board.js';
import { SAMPLES } from '../helpers/cli.js';

const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-byte-names-'));
after(() => rmSync(work, { recursive: true, force: true }));

const file = path.join(work, 'old-disc.jigdo');
const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
/** Latin-1 `é`, CP437 `ü` (0x81), MacRoman `ä` (0x8A) in names, a label and a server; UTF-8 `é` too. */
const JIGDO = latin1(
  [
    '[Jigdo]',
    'Version=1.2',
    '[Image]',
    'Filename=disc.iso',
    'Template=caf\xe9.template',
    'ShortInfo=Disc of M\x81ller',
    '[Parts]',
    'P6D_Q1IkDFd5tl9ZIOws9A=Disc:caf\xe9.bin',
    'QiYNQ8Ib2_eZJAaaz5Uwtg=Disc:docs/M\x81ller.pdf',
    'Jx9zDY0vA9Kf8I7bnmX0Dg=M\x8archen:sub/x.bin',
    '[Servers]',
    'Disc=http://mirror.example/old/\xe9t\xe9/',
    'Disc=file:local/',
    'M\x8archen=http://mirror.example/m/',
    '',
  ].join('\n'),
);
const withUtf8 = Buffer.concat([JIGDO, Buffer.from('[Parts]\nYYYYDY0vA9Kf8I7bnmX0Dg=Disc:café.bin\n')]);

test('a .jigdo with Latin-1, CP437 and MacRoman bytes parses, and every byte is kept', async () => {
  const j = await parseJigdo(withUtf8, { kind: 'file', path: file });
  const uri = (key: string): Buffer => encodeBytes(j.parts.get(key)![0]!.uri);
  assert.deepEqual(uri('P6D_Q1IkDFd5tl9ZIOws9A'), latin1('Disc:caf\xe9.bin'));
  assert.deepEqual(uri('QiYNQ8Ib2_eZJAaaz5Uwtg'), latin1('Disc:docs/M\x81ller.pdf'));
  assert.deepEqual(uri('Jx9zDY0vA9Kf8I7bnmX0Dg'), latin1('M\x8archen:sub/x.bin'));
  assert.equal(j.parts.get('YYYYDY0vA9Kf8I7bnmX0Dg')![0]!.uri, 'Disc:café.bin'); // valid UTF-8 stays text
  assert.deepEqual(encodeBytes(j.images[0]!.template), latin1('caf\xe9.template'));
  assert.deepEqual(encodeBytes(j.images[0]!.shortInfo!), latin1('Disc of M\x81ller'));
  assert.deepEqual(encodeBytes(j.servers.get(decodeBytes(latin1('M\x8archen')))![0]!.uri), latin1('http://mirror.example/m/'));
});

test('candidates: URLs ask for the exact bytes (%XX), local paths keep them, the mirror is found', async () => {
  const j = await parseJigdo(JIGDO, { kind: 'file', path: file });
  const cands = partCandidates(j, new LabelMap(j.servers), 'P6D_Q1IkDFd5tl9ZIOws9A');
  const url = cands.find((c) => c.kind === 'url');
  assert.equal(url?.kind === 'url' && url.url, 'http://mirror.example/old/%E9t%E9/caf%E9.bin');
  assert.equal(url?.kind === 'url' && mirrorOf(url.url, url.rest), 'http://mirror.example/old/%E9t%E9/');
  const local = cands.find((c) => c.kind === 'file');
  assert.deepEqual(local?.kind === 'file' && encodeBytes(local.path), latin1(path.join(work, 'local', 'caf\xe9.bin')));
  const m = partCandidates(j, new LabelMap(j.servers), 'Jx9zDY0vA9Kf8I7bnmX0Dg');
  assert.deepEqual(m.map((c) => c.kind === 'url' && c.url), ['http://mirror.example/m/sub/x.bin']);
});

test('a relative reference from a remote .jigdo, and the basename of a %-encoded template URL', () => {
  const name = decodeBytes(latin1('caf\xe9.template'));
  const remote = resolveReference(name, { kind: 'url', url: 'http://h/jigdo/x.jigdo' });
  assert.deepEqual(remote, { kind: 'url', url: 'http://h/jigdo/caf%E9.template' });
  assert.equal(baseName(remote!), name); // the same name a local copy beside the .jigdo has
});

test('binary data is still refused: a NUL, control bytes, a template given as the .jigdo', async () => {
  const where = { kind: 'file' as const, path: file };
  for (const bad of [Buffer.concat([JIGDO, Buffer.from('[Parts]\nx=\0y\n')]), Buffer.concat([JIGDO, Buffer.from('\x01\x02\n')])]) {
    await assert.rejects(parseJigdo(bad, where), (err: unknown) => err instanceof JigdoError && /binary data on line \d+/.test(err.message));
  }
  const template = await readFile(path.join(SAMPLES, 'jf-md5-gzip.template'));
  await assert.rejects(parseJigdo(template, where), (err: unknown) => err instanceof JigdoError && /this is a jigdo template/.test(err.message));
});

test('a message shows the escaped bytes as \\xNN (never U+FFFD)', async () => {
  const bad = Buffer.concat([latin1('[Image]\nFilename=M\x81ller/..\nTemplate=t\n')]);
  await assert.rejects(parseJigdo(bad, { kind: 'file', path: file }), (err: unknown) => {
    assert.ok(err instanceof JigdoError);
    assert.match(err.message, /Filename=M\\x81ller\/\.\. is not a plain file name/);
    return true;
  });
});

test('the hash index keeps a non-UTF-8 path exactly across save and load', async () => {
  const indexFile = path.join(work, 'hash-index.json');
  const part = decodeBytes(latin1(path.join(work, 'caf\xe9 M\x81ller.bin')));
  const id = { size: 3, mtimeMs: 1, ctimeMs: 2, ino: 3, dev: 4 };
  const a = await HashIndex.load(indexFile);
  a.set(part, id, 'md5', 'SUM');
  await a.save();
  await writeFile(indexFile + '.copy', await readFile(indexFile)); // bytes on disk are plain JSON text
  const b = await HashIndex.load(indexFile + '.copy');
  assert.equal(b.get(part, id, 'md5'), 'SUM');
  const other = decodeBytes(latin1(path.join(work, 'caf\xe8 M\x81ller.bin')));
  assert.equal(b.get(other, id, 'md5'), undefined); // a neighbouring byte is another file
  assert.equal(b.get(part.replace(/[\udc80-\udcff]/gu, '\ufffd'), id, 'md5'), undefined); // as a lossy decode would name it
});
