// The .jigdo model (spec §4): sections, gzip and CRLF files, [Include], versions, bad files.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MAX_IMAGES, parseJigdo, type JigdoFile } from '../../src/format/jigdo.js';
import { JigdoError } from '../../src/format/errors.js';
import { loadJigdo } from '../../src/engine/session.js';
import { SAMPLES } from '../helpers/cli.js';

const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-format-jigdo-'));
after(() => rmSync(work, { recursive: true, force: true }));

const loc = (file: string) => ({ kind: 'file' as const, path: file });
const sample = (name: string): string => path.join(SAMPLES, name);
const parseText = (text: string, file = path.join(work, 'x.jigdo')): Promise<JigdoFile> => parseJigdo(Buffer.from(text), loc(file));

/** Everything of a parsed file that does not depend on where it was read from. */
function shape(j: JigdoFile) {
  const values = (m: Iterable<[string, Array<{ uri: string; weight: number }>]>) =>
    [...m].map(([k, list]) => [k, list.map((v) => [v.uri, v.weight])]);
  return { version: j.version, generator: j.generator, images: j.images, parts: values(j.parts), servers: values(j.servers), kind: j.checksumKind };
}

async function rejects(p: Promise<unknown>, pattern: RegExp, file?: string): Promise<JigdoError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof JigdoError, `expected a JigdoError, got ${String(err)}`);
    assert.match(err.message, pattern);
    if (file) assert.ok(err.message.includes(file), `"${err.message}" does not name ${file}`);
    return err;
  }
  assert.fail(`expected a rejection matching ${pattern}`);
}

test('jf-md5-gzip.jigdo: every field', async () => {
  const j = await loadJigdo(sample('jf-md5-gzip.jigdo'));
  assert.deepEqual(j.version, { major: 1, minor: 2 });
  assert.equal(j.generator, 'jigdo-file/0.8.0');
  assert.equal(j.images.length, 1);
  const img = j.images[0]!;
  assert.equal(img.filename, 'image.iso');
  assert.equal(img.template, 'jf-md5-gzip.template');
  // Template-MD5Sum is the MD5 of the template file (spec §4.4): check against the real file.
  const { createHash } = await import('node:crypto');
  assert.deepEqual(img.templateMd5, createHash('md5').update(await readFile(sample('jf-md5-gzip.template'))).digest());
  assert.equal(img.templateSha256, undefined);
  assert.equal(j.checksumKind, 'md5');
  assert.deepEqual([...j.parts.keys()], ['P6D_Q1IkDFd5tl9ZIOws9A', 'QiYNQ8Ib2_eZJAaaz5Uwtg', 'T_xAhGd5OOFDZW1sYi26Eg']);
  assert.deepEqual(j.parts.get('QiYNQ8Ib2_eZJAaaz5Uwtg')!.map((v) => v.uri), ['Parts:sub/b-copy.bin']);
  assert.deepEqual(j.servers.get('Parts')!.map((v) => v.uri), ['http://127.0.0.1:8765/parts/']);
  assert.deepEqual(j.warnings, []);
});

test('sha256 .jigdo (Version 2.0): Template-SHA256Sum and 43-char keys', async () => {
  const j = await loadJigdo(sample('jf-sha256-bzip2.jigdo'));
  assert.deepEqual(j.version, { major: 2, minor: 0 });
  assert.equal(j.checksumKind, 'sha256');
  const { createHash } = await import('node:crypto');
  assert.deepEqual(j.images[0]!.templateSha256, createHash('sha256').update(await readFile(sample('jf-sha256-bzip2.template'))).digest());
  for (const key of j.parts.keys()) assert.equal(key.length, 43);
});

test('libjte .jigdo: trailing space after Template-MD5Sum, comment lines, empty [Servers], one line per file', async () => {
  const j = await loadJigdo(sample('jte-md5-gzip.jigdo'));
  assert.equal(j.images[0]!.filename, 'stdio:jte1.iso');
  assert.equal(j.images[0]!.template, 'http://localhost/jte-md5-gzip.template');
  assert.equal(j.images[0]!.templateMd5!.toString('hex'), '37fb77b7d7b8e4d05276c760006ca100'); // the "# Template Hex MD5Sum" comment
  assert.equal(j.servers.size, 0);
  // The same checksum on two lines: alternative locations in file order (spec §4.3).
  assert.deepEqual(j.parts.get('QiYNQ8Ib2_eZJAaaz5Uwtg')!.map((v) => v.uri), ['Parts:b.bin', 'Parts:sub/b-copy.bin']);
  assert.deepEqual(j.parts.get('1B2M2Y8AsgTpgAmY7PhCfg')!.map((v) => v.uri), ['Parts:empty']);
});

test('a gzipped .jigdo named .jigdo is detected by its magic and reads like the plain one', async () => {
  const raw = await readFile(sample('jf-md5-gzip.gz.jigdo'));
  assert.deepEqual([raw[0], raw[1]], [0x1f, 0x8b]);
  const gz = await loadJigdo(sample('jf-md5-gzip.gz.jigdo'));
  const plain = await loadJigdo(sample('jf-md5-gzip.jigdo'));
  assert.deepEqual(shape(gz), shape(plain));
  // Multi-member gzip decompresses as one stream (spec §4.1).
  const text = await readFile(sample('jf-md5-gzip.jigdo'));
  const cut = text.indexOf('[Parts]');
  const multi = Buffer.concat([gzipSync(text.subarray(0, cut)), gzipSync(text.subarray(cut))]);
  assert.deepEqual(shape(await parseJigdo(multi, loc(path.join(work, 'multi.jigdo')))), shape(plain));
});

test('a gzipped .jigdo with bytes after its last member reads as jigdo-file reads it: they are ignored', async () => {
  const raw = await readFile(sample('jf-md5-gzip.gz.jigdo'));
  const plain = await loadJigdo(sample('jf-md5-gzip.jigdo'));
  const tailed = await parseJigdo(Buffer.concat([raw, Buffer.from('GARBAGE\n')]), loc(path.join(work, 'tailed.jigdo')));
  assert.deepEqual(shape(tailed), shape(plain));
});

test('a corrupt gzipped .jigdo is a JigdoError naming the file', async () => {
  const raw = await readFile(sample('jf-md5-gzip.gz.jigdo'));
  const file = path.join(work, 'cut.jigdo');
  await rejects(parseJigdo(raw.subarray(0, raw.length - 10), loc(file)), /gzip/i, file);
});

test('CRLF .jigdo files read exactly like LF ones', async () => {
  for (const name of ['jf-md5-gzip.jigdo', 'quoting.jigdo', 'jte-md5-gzip.jigdo', 'jf-sha256-bzip2.jigdo']) {
    const text = await readFile(sample(name), 'utf8');
    assert.ok(!text.includes('\r'));
    const crlf = path.join(work, `crlf-${name}`);
    await writeFile(crlf, text.replace(/\n/g, '\r\n'));
    const a = await loadJigdo(crlf);
    const b = await loadJigdo(sample(name));
    assert.deepEqual(shape(a), shape(b), name);
  }
});

test('quoting.jigdo: Filename quoted, ShortInfo/Info raw, [Comment] ignored, several [Parts] sections merged in order', async () => {
  const j = await loadJigdo(sample('quoting.jigdo'));
  const img = j.images[0]!;
  assert.equal(img.filename, 'image with space.iso');
  assert.equal(img.shortInfo, `'Quoting "test" image'`);
  assert.equal(img.info, `'Generated <b>by hand</b>'`);
  assert.deepEqual(j.parts.get('P6D_Q1IkDFd5tl9ZIOws9A')!.map((v) => v.uri), [
    'Src:a.bin',
    'Undefined:foo/a.bin',
    'relative/path/a.bin',
    'file:/abs/path/a.bin',
    'http://direct.example/a.bin',
  ]);
  assert.deepEqual(j.parts.get('QiYNQ8Ib2_eZJAaaz5Uwtg')!.map((v) => v.uri), ['Src:b c.bin']);
  assert.equal(j.parts.size, 2, 'the bogus line in [Comment] is not a part');
  assert.deepEqual(j.servers.get('Src')!.map((v) => v.uri), [
    'http://h1.example/with space/',
    'http://h2.example/x',
    'http://h3.example/sq"uote/',
    'http://h4.example/esc"aped\\/',
    'Chain:sub/',
  ]);
  assert.deepEqual(j.servers.get('Chain')!.map((v) => [v.uri, v.weight]), [
    ['http://chain1.example/', 0],
    ['ftp://chain2.example/', -1],
  ]);
  // The remote [Include] cannot be read offline: a warning, not an error.
  assert.equal(j.warnings.length, 1);
  assert.match(j.warnings[0]!, /other\.jigdo/);
});

test('Filename/Template written unquoted with spaces are joined with one space; # in an unquoted value is a comment', async () => {
  const j = await parseText('[Image]\nFilename=Mac OS   8.1.udro.dmg\nTemplate=my  image.template#comment\n');
  assert.equal(j.images[0]!.filename, 'Mac OS 8.1.udro.dmg');
  assert.equal(j.images[0]!.template, 'my image.template');
});

test('several [Image] sections: all are kept in order; one without Template is dropped', async () => {
  const j = await parseText('[Image]\nFilename=a.iso\nTemplate=a.template\n[Image]\nFilename=b.iso\n[Image]\nFilename=c.iso\nTemplate=c.template\n');
  assert.deepEqual(j.images.map((i) => i.filename), ['a.iso', 'c.iso']);
});

test(`more than ${MAX_IMAGES} [Image] sections: the rest are dropped with one warning (each kept one costs an object)`, async () => {
  // 382 KB of gzip held 32 million "[Image]" lines, and the parse took 2.9 GB before it said "lacks Filename".
  const one = (i: number): string => `[Image]\nFilename=i${i}.iso\nTemplate=i${i}.template\n`;
  const j = await parseText(Array.from({ length: MAX_IMAGES + 5 }, (_, i) => one(i)).join('') + '[Image]\n'.repeat(1000));
  assert.equal(j.images.length, MAX_IMAGES);
  assert.equal(j.images.at(-1)!.filename, `i${MAX_IMAGES - 1}.iso`);
  const warned = j.warnings.filter((w) => w.includes('[Image]'));
  assert.equal(warned.length, 1);
  assert.match(warned[0]!, new RegExp(`line ${MAX_IMAGES * 3 + 1}: ignored \\[Image\\] sections: more than ${MAX_IMAGES}`));
});

test('unknown sections and keys are ignored; [Parts] and [Servers] may repeat', async () => {
  const j = await parseText(
    [
      '[Jigdo]',
      'Version=1.2',
      'Unknown=1',
      '[Mirrorlists]',
      'P6D_Q1IkDFd5tl9ZIOws9A=Bogus:x',
      '[Image]',
      'Filename=i',
      'Template=t',
      'Whatever=x',
      '[Servers]',
      'A=http://one/',
      '[Parts]',
      'P6D_Q1IkDFd5tl9ZIOws9A=A:1',
      '[Servers]',
      'A=http://two/',
      'B=A:b/',
      '[Parts]',
      'P6D_Q1IkDFd5tl9ZIOws9A=A:2',
      'QiYNQ8Ib2_eZJAaaz5Uwtg=B:3',
    ].join('\n'),
  );
  assert.deepEqual(j.parts.get('P6D_Q1IkDFd5tl9ZIOws9A')!.map((v) => v.uri), ['A:1', 'A:2']);
  assert.deepEqual(j.servers.get('A')!.map((v) => v.uri), ['http://one/', 'http://two/']);
  assert.deepEqual([...j.servers.keys()], ['A', 'B']);
});

test('[Parts] lines with a non-canonical or unknown key are skipped with a warning', async () => {
  const j = await parseText('[Image]\nFilename=i\nTemplate=t\n[Parts]\nP6D_Q1IkDFd5tl9ZIOws9B=A:x\nnot-a-key=A:y\nP6D_Q1IkDFd5tl9ZIOws9A=A:z\n');
  assert.deepEqual([...j.parts.keys()], ['P6D_Q1IkDFd5tl9ZIOws9A']);
  assert.equal(j.warnings.length, 2);
});

test('a warning that quotes a huge line keeps its start and end, not 900 KB of it', async () => {
  // Found by a probe: `info` echoed a 900 KB [Parts] line whole as one Warning: line.
  const huge = `${'x'.repeat(900_000)}=A:y`;
  const j = await parseText(`[Image]\nFilename=i\nTemplate=t\n[Parts]\n${huge}\n`);
  assert.equal(j.warnings.length, 1);
  assert.ok(j.warnings[0]!.length < 1000, `${j.warnings[0]!.length} characters`);
  assert.match(j.warnings[0]!, /line 5: .*"xxx+…\(\d+ characters\)…x+"$/);
});

test('Version: 1.x and 2.x are read; Version=3.0 is refused (spec §4.3)', async () => {
  const body = '[Image]\nFilename=i\nTemplate=t\n';
  assert.deepEqual((await parseText(`[Jigdo]\nVersion=1.1\n${body}`)).version, { major: 1, minor: 1 });
  assert.deepEqual((await parseText(`[Jigdo]\nVersion=2.0\n${body}`)).version, { major: 2, minor: 0 });
  const file = path.join(work, 'v3.jigdo');
  await rejects(parseText(`[Jigdo]\nVersion=3.0\n${body}`, file), /newer|version/i, file);
  await rejects(parseText(`[Jigdo]\nVersion=10.1\n${body}`, file), /newer|version/i, file);
  await rejects(parseText(`[Jigdo]\nVersion=one\n${body}`, file), /Version/, file);
});

test('no [Image] section, or binary data, is a JigdoError naming the file', async () => {
  const file = path.join(work, 'bad.jigdo');
  await rejects(parseText('[Jigdo]\nVersion=1.2\n[Parts]\nP6D_Q1IkDFd5tl9ZIOws9A=A:x\n', file), /\[Image\]/, file);
  await rejects(parseText('', file), /\[Image\]/, file);
  await rejects(parseJigdo(await readFile(sample('jf-md5-gzip.template')), loc(file)), /not a \.jigdo|binary/i, file);
  const garbage = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7919 + 13) & 0xff));
  await rejects(parseJigdo(garbage, loc(file)), /./, file);
  await rejects(parseText('[Image]\nFilename=i\nTemplate=t\nTemplate-MD5Sum=not-base64!\n', file), /Template-MD5Sum/, file);
  await rejects(parseText('[Image]\nFilename=i\nTemplate=t\nTemplate-MD5Sum=1B2M2Y8AsgTpgAmY7PhCfh\n', file), /Template-MD5Sum/, file);
  // A carriage return inside the value (the fuzzer's case): quoted as \x0d, the message stays one line.
  const cr = await rejects(parseText('[Image]\nFilename=i\nTemplate=t\nTemplate-MD5Sum=wC2h6DBX5nguti6G\rWtIpA\n', file), /Template-MD5Sum=wC2h6DBX5nguti6G\\x0dWtIpA is not/, file);
  assert.doesNotMatch(cr.message, /[\r\n]/);
});

test('[Include] of a local file is read in place, relative to the including file', async () => {
  const dir = path.join(work, 'inc');
  await mkdir(path.join(dir, 'sub'), { recursive: true });
  await writeFile(
    path.join(dir, 'main.jigdo'),
    [
      '[Image]',
      'Filename=i.iso',
      'Template=t.template',
      '[Servers]',
      'A=http://main/',
      '[Parts]',
      'P6D_Q1IkDFd5tl9ZIOws9A=A:main-first',
      '[Include sub/extra.jigdo]',
      'T_xAhGd5OOFDZW1sYi26Eg=A:after-include-ignored', // no real section since the Include
      '[Parts]',
      'P6D_Q1IkDFd5tl9ZIOws9A=A:main-last',
    ].join('\n'),
  );
  await writeFile(
    path.join(dir, 'sub', 'extra.jigdo'),
    ['[Servers]', 'A=http://extra/', 'B=file:local/', '[Include deeper.jigdo]', '[Parts]', 'P6D_Q1IkDFd5tl9ZIOws9A=B:from-extra'].join('\n'),
  );
  await writeFile(path.join(dir, 'sub', 'deeper.jigdo'), ['[Servers]', 'C=http://deeper/', '[Parts]', 'QiYNQ8Ib2_eZJAaaz5Uwtg=C:q'].join('\n'));
  const j = await loadJigdo(path.join(dir, 'main.jigdo'));
  assert.deepEqual(j.warnings, []);
  assert.deepEqual(j.parts.get('P6D_Q1IkDFd5tl9ZIOws9A')!.map((v) => v.uri), ['A:main-first', 'B:from-extra', 'A:main-last']);
  assert.deepEqual(j.parts.get('QiYNQ8Ib2_eZJAaaz5Uwtg')!.map((v) => v.uri), ['C:q']);
  assert.equal(j.parts.has('T_xAhGd5OOFDZW1sYi26Eg'), false);
  assert.deepEqual(j.servers.get('A')!.map((v) => v.uri), ['http://main/', 'http://extra/']);
  // Values remember the file they came from, for relative references (spec §5.2).
  assert.deepEqual(j.servers.get('B')![0]!.base, { kind: 'file', path: path.join(dir, 'sub', 'extra.jigdo') });
  assert.deepEqual(j.servers.get('C')![0]!.base, { kind: 'file', path: path.join(dir, 'sub', 'deeper.jigdo') });
});

test('an [Include] loop is an error naming the loop', async () => {
  const dir = path.join(work, 'loop');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'a.jigdo'), '[Image]\nFilename=i\nTemplate=t\n[Include b.jigdo]\n');
  await writeFile(path.join(dir, 'b.jigdo'), '[Servers]\nX=http://x/\n[Include a.jigdo]\n');
  const err = await rejects(loadJigdo(path.join(dir, 'a.jigdo')), /loop/i);
  assert.ok(err.message.includes('a.jigdo'), err.message);
  assert.ok(err.message.includes('b.jigdo'), err.message);
  await writeFile(path.join(dir, 'self.jigdo'), '[Image]\nFilename=i\nTemplate=t\n[Include self.jigdo]\n');
  await rejects(loadJigdo(path.join(dir, 'self.jigdo')), /loop/i, 'self.jigdo');
});

test('a missing local [Include] costs only a warning', async () => {
  const file = path.join(work, 'missing-include.jigdo');
  await writeFile(file, '[Image]\nFilename=i\nTemplate=t\n[Include nowhere.jigdo]\n[Servers]\nA=http://a/\n');
  const j = await loadJigdo(file);
  assert.equal(j.warnings.length, 1);
  assert.match(j.warnings[0]!, /nowhere\.jigdo/);
  assert.deepEqual(j.servers.get('A')!.map((v) => v.uri), ['http://a/']);
});

// ---------------------------------------------------------------------------------------------
// Hostile input (issue 7): memory per part, limits, Filename

/** The V8 heap in use after a full collection (gc exposed at run time: the test runner starts us without it). */
function heapUsedAfterGc(): number {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed;
}

test('300,000 distinct [Parts] lines keep near the size of their text in memory (not 20 times it)', async () => {
  const lines: string[] = ['[Image]', 'Filename=x.iso', 'Template=x.template', '[Servers]', 'Debian=http://deb.example/debian/', '[Parts]'];
  for (let i = 0; i < 300_000; i++) lines.push(`${createHash('md5').update(String(i)).digest('base64url')}=Debian:pool/main/p/pkg${i % 5000}/pkg${i}_1.0_amd64.deb`);
  const text = Buffer.from(lines.join('\n'));
  lines.length = 0;
  const before = heapUsedAfterGc();
  const j = await parseJigdo(text, loc(path.join(work, 'many.jigdo')));
  const kept = heapUsedAfterGc() - before;
  assert.equal(j.parts.size, 300_000);
  assert.deepEqual(j.parts.get(createHash('md5').update('7').digest('base64url'))!.map((v) => v.uri), ['Debian:pool/main/p/pkg7/pkg7_1.0_amd64.deb']);
  // Measured: 2.4 times the text (each part's line, two slices of it, a Map entry); before: 21 times.
  assert.ok(kept < 4 * text.length, `kept ${(kept / 2 ** 20).toFixed(0)} MB for ${(text.length / 2 ** 20).toFixed(0)} MB of text`);
});

test('quoted and escaped [Parts] values keep near the size of their text in memory (a chain of pieces was 35 times it)', async () => {
  const lines: string[] = ['[Image]', 'Filename=x.iso', 'Template=x.template', '[Parts]'];
  for (let i = 0; i < 16; i++) lines.push(`${createHash('md5').update(String(i)).digest('base64url')}="${'a'.repeat(200_000)}"`);
  for (let i = 16; i < 32; i++) lines.push(`${createHash('md5').update(String(i)).digest('base64url')}=${'\\b'.repeat(100_000)}`);
  const text = Buffer.from(lines.join('\n'));
  lines.length = 0;
  const before = heapUsedAfterGc();
  const j = await parseJigdo(text, loc(path.join(work, 'quoted.jigdo')));
  const kept = heapUsedAfterGc() - before;
  assert.equal(j.parts.get(createHash('md5').update('3').digest('base64url'))![0]!.uri, 'a'.repeat(200_000));
  assert.equal(j.parts.get(createHash('md5').update('20').digest('base64url'))![0]!.uri, 'b'.repeat(100_000));
  assert.ok(kept < 4 * text.length, `kept ${(kept / 2 ** 20).toFixed(0)} MB for ${(text.length / 2 ** 20).toFixed(1)} MB of text`);
});

test('a gzipped .jigdo that inflates past 256 MiB, or a line over 1 MiB, is a JigdoError naming the file', async () => {
  const file = path.join(work, 'bomb.jigdo');
  // 300 MiB of blank lines compress to 300 kB.
  const bomb = gzipSync(Buffer.concat([Buffer.from('[Image]\nFilename=x.iso\nTemplate=x.template\n'), Buffer.alloc(300 << 20, 10)]), { level: 1 });
  await rejects(parseJigdo(bomb, loc(file)), /too big for a \.jigdo: once gunzipped, more than 256 MiB of text/, file);
  await rejects(parseText(`[Image]\nFilename=x.iso\nInfo=${'i'.repeat(2 << 20)}\n`, file), /line 3 is longer than 1 MiB/, file);
});

test('Filename must leave a plain file name (spec §4.3 allows folders and stdio:, never .. or an empty leaf)', async () => {
  const file = path.join(work, 'names.jigdo');
  for (const name of ['..', 'a/b/..', '.', 'stdio:', 'x.iso/', '/', '../..', `${'n'.repeat(256)}.iso`]) {
    await rejects(parseText(`[Jigdo]\nVersion=1.2\n[Image]\nFilename=${name}\nTemplate=x.template\n`, file), /line 4: Filename=.* is not a plain file name/, file);
  }
  for (const name of ['x.iso', 'stdio:x.iso', 'out/dir/x.iso', '..x.iso', 'my image.iso']) {
    const j = await parseText(`[Image]\nFilename=${name}\nTemplate=x.template\n`, file);
    assert.equal(j.images[0]!.filename, name);
  }
});

test('many ignored lines keep at most 100 warnings, and say how many more', async () => {
  const bad = Array.from({ length: 5000 }, (_, i) => `bad${i}=x`).join('\n');
  const j = await parseText(`[Image]\nFilename=x.iso\nTemplate=x.template\n[Parts]\n${bad}\n`);
  assert.equal(j.warnings.length, 101);
  assert.match(j.warnings[100]!, /4900 more lines ignored/);
});

test('a label holding a run of 900,000 blanks parses in linear time (found by the fuzzer: the trailing-blank regex was quadratic)', { timeout: 20_000 }, async () => {
  const label = `L${' '.repeat(900_000)}x`;
  const t0 = Date.now();
  const j = await parseText(`[Image]\nFilename=a.iso\nTemplate=a.template\n[Servers]\n${label}=http://127.0.0.1:9/\n${label}  =http://127.0.0.1:9/b/\n`);
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  assert.deepEqual(j.servers.get(label)?.map((v) => v.uri), ['http://127.0.0.1:9/', 'http://127.0.0.1:9/b/']);
});

test('an error quoting a huge value of the file stays one short line that still says what is wrong (found by the fuzzer)', async () => {
  const name = Buffer.concat([Buffer.from('[Image]\nFilename=i'), Buffer.alloc(100_000, 0xe9), Buffer.from('/..\nTemplate=x.template\n')]);
  const err = await rejects(parseJigdo(name, loc(path.join(work, 'huge-name.jigdo'))), /Filename=i\\xe9.*…\(\d+ characters\)….*\\xe9\/\.\. is not a plain file name to write the image to$/);
  assert.ok(err.message.length < 1200 && !err.message.includes('\n'), `${err.message.length} characters`);
});

test('nested [Include]s held while followed count against the limit as files, not only as text read', async () => {
  // Each file: its [Include] first, then 40 MiB more (never read as text before the [Include] is followed). Sixteen
  // levels held 640 MiB; gzipped ones held 1.1 GB. (Buffer.alloc's untouched pages cost this test no memory.)
  const level = (n: number): Buffer => {
    const b = Buffer.alloc(40 << 20);
    b.write(`[Include l${n + 1}.jigdo]\n`);
    return b;
  };
  const load = async (target: { kind: string; url?: string }): Promise<Buffer> => level(Number(/l(\d+)\.jigdo$/.exec(target.url ?? '')![1]));
  const top = Buffer.from('[Image]\nFilename=i\nTemplate=t\n[Include l1.jigdo]\n');
  await assert.rejects(parseJigdo(top, { kind: 'url', url: 'http://h/top.jigdo' }, load as never), (err: Error) => {
    assert.match(err.message, /too big for a \.jigdo: more than 256 MiB of files with its \[Include\]s/);
    return true;
  });
});
