// Turning a part into locations (spec §5): label chains, jigdo-file's print-missing expansion (checked
// against the golden output), and the candidate order with --try-first / --try-last (spec §5.5).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseJigdo, type JigdoFile } from '../../src/format/jigdo.js';
import { LabelMap, expandPart, partCandidates, splitLabel, type Candidate } from '../../src/format/resolve.js';
import { decodeB64 } from '../../src/format/base64.js';
import { loadJigdo } from '../../src/engine/session.js';
import { SAMPLES } from '../helpers/cli.js';

const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-format-resolve-'));
after(() => rmSync(work, { recursive: true, force: true }));

const A = 'P6D_Q1IkDFd5tl9ZIOws9A';
const B = 'QiYNQ8Ib2_eZJAaaz5Uwtg';
const C = 'T_xAhGd5OOFDZW1sYi26Eg';

const jigdoAt = (dir: string, text: string): Promise<JigdoFile> =>
  parseJigdo(Buffer.from(`[Image]\nFilename=i.iso\nTemplate=t.template\n${text}`), { kind: 'file', path: path.join(dir, 'x.jigdo') });

const show = (c: Candidate): string => (c.kind === 'url' ? c.url : c.kind === 'file' ? `file ${c.path}` : `unresolved ${c.text}`);

test('splitLabel takes the first colon', () => {
  assert.deepEqual(splitLabel('Src:a/b:c'), { label: 'Src', rest: 'a/b:c' });
  assert.deepEqual(splitLabel('http://x/y'), { label: 'http', rest: '//x/y' });
  assert.equal(splitLabel('no-colon'), undefined);
  assert.equal(splitLabel(':x'), undefined);
});

test('label chains expand to any depth, in [Servers] order, by plain concatenation', async () => {
  const j = await jigdoAt(work, ['[Servers]', 'A=B:a/', 'A=http://direct/', 'B=C:b/', 'B=ftp://b2/', 'C=http://c1/', 'C=http://c2/'].join('\n'));
  const labels = new LabelMap(j.servers);
  assert.deepEqual(labels.expand('A').map((e) => e.text), ['http://c1/b/a/', 'http://c2/b/a/', 'ftp://b2/a/', 'http://direct/']);
  assert.deepEqual(labels.expand('C').map((e) => e.text), ['http://c1/', 'http://c2/']);
  assert.deepEqual(labels.expand('Nope'), []);
  // No '/' is added or removed.
  assert.deepEqual(labels.expandValue('C:x', 0, j.location).map((e) => e.text), ['http://c1/x', 'http://c2/x']);
  assert.deepEqual(labels.expandValue('C:/x', 0, j.location).map((e) => e.text), ['http://c1//x', 'http://c2//x']);
  // Undefined labels and URL schemes stand as they are.
  assert.deepEqual(labels.expandValue('Undefined:x', 0, j.location).map((e) => e.text), ['Undefined:x']);
  assert.deepEqual(labels.expandValue('http://h/x', 0, j.location).map((e) => e.text), ['http://h/x']);
});

test('label loops terminate and never produce a fetchable URL out of the loop', async () => {
  // Spec §4.3: loops give undefined results; jigdo-file drops them quietly. What must hold: no hang,
  // the loop-free values come through in order, anything else stays an unresolved Label: string.
  const j = await jigdoAt(work, ['[Servers]', 'A=B:a/', 'B=A:b/', 'B=http://b/', 'S=S:x', 'S=http://s/', '[Parts]', `${A}=A:f`, `${B}=S:g`].join('\n'));
  const labels = new LabelMap(j.servers);
  const urls = (key: string) => partCandidates(j, labels, key).filter((c) => c.kind !== 'unresolved').map(show);
  assert.deepEqual(urls(A), ['http://b/a/f']);
  assert.deepEqual(urls(B), ['http://s/g']);
  for (const key of [A, B]) {
    for (const c of partCandidates(j, labels, key)) if (c.kind === 'unresolved') assert.match(c.text, /^[ABS]:/);
  }
});

/** print-missing-all / print-missing for one .jigdo and the parts of its template, as jigdo-file prints them. */
function printMissing(j: JigdoFile, keys: string[], first: boolean): string {
  const labels = new LabelMap(j.servers);
  const sorted = [...keys].sort((x, y) => Buffer.compare(decodeB64(x, 16)!, decodeB64(y, 16)!));
  const printable = (t: string) => t.replace(/^file:/, '');
  return sorted
    .map((k) => {
      const all = expandPart(j, labels, k).map((e) => printable(e.text));
      return first ? `${all[0]}\n` : `${all.join('\n')}\n\n`;
    })
    .join('');
}

test('quoting.jigdo expands exactly like jigdo-file print-missing-all and print-missing (golden files)', async () => {
  const j = await loadJigdo(path.join(SAMPLES, 'quoting.jigdo'));
  const keys = [A, B, C]; // the parts of jf-md5-gzip.template
  assert.equal(printMissing(j, keys, false), readFileSync(path.join(SAMPLES, 'golden-quoting-print-missing-all.txt'), 'utf8'));
  assert.equal(printMissing(j, keys, true), readFileSync(path.join(SAMPLES, 'golden-quoting-print-missing.txt'), 'utf8'));
});

test('partCandidates: [Parts] lines in file order, each expanded in [Servers] order, then MD5Sum:', async () => {
  const dir = path.join(work, 'jig');
  const j = await jigdoAt(
    dir,
    [
      '[Servers]',
      'M=http://m1/',
      'M=http://m2/',
      'MD5Sum=http://bysum/',
      '[Parts]',
      `${A}=M:a.bin`,
      `${A}=http://direct/a.bin`,
      `${A}=Undefined:x/a.bin`,
      `${A}=file:rel/a.bin`,
      `${A}=plain/relative/a.bin`,
      `${A}=M:a.bin`, // duplicate: dropped
    ].join('\n'),
  );
  const got = partCandidates(j, new LabelMap(j.servers), A).map(show);
  assert.deepEqual(got, [
    'http://m1/a.bin',
    'http://m2/a.bin',
    'http://direct/a.bin',
    'unresolved Undefined:x/a.bin',
    `file ${path.join(dir, 'rel', 'a.bin')}`, // relative to the .jigdo's folder (spec §5.5 step 2)
    `file ${path.join(dir, 'plain', 'relative', 'a.bin')}`,
    `http://bysum/${A}`,
  ]);
  // A part with no [Parts] line: only the MD5Sum: expansion.
  assert.deepEqual(partCandidates(j, new LabelMap(j.servers), B).map(show), [`http://bysum/${B}`]);
});

test('partCandidates: without an MD5Sum label, no literal MD5Sum: candidate is added', async () => {
  const j = await jigdoAt(work, ['[Servers]', 'M=http://m/', '[Parts]', `${A}=M:a`].join('\n'));
  assert.deepEqual(partCandidates(j, new LabelMap(j.servers), A).map(show), ['http://m/a']);
  assert.deepEqual(partCandidates(j, new LabelMap(j.servers), C), []);
});

test('a part is fetched by the label of its own checksum kind: a SHA-256 template with an empty [Parts] uses SHA256Sum:', async () => {
  const S = 'VAaVOQx1KgpoP2zxp4cLpq5eA0NrF2nuu1LyAQDk-Xw'; // a SHA-256 key
  const j = await jigdoAt(work, ['[Servers]', 'SHA256Sum=http://bysha/', 'MD5Sum=http://bymd5/', '[Parts]'].join('\n'));
  assert.equal(j.checksumKind, 'md5', 'no [Parts] key, Version 1.x: the .jigdo alone says MD5');
  const labels = new LabelMap(j.servers);
  assert.deepEqual(partCandidates(j, labels, S).map(show), [`http://bysha/${S}`]);
  assert.deepEqual(expandPart(j, labels, S).map((e) => e.text), [`http://bysha/${S}`], 'as jigdo-file print-missing-all prints it');
  assert.deepEqual(partCandidates(j, labels, A).map(show), [`http://bymd5/${A}`]);
});

test('partCandidates: --try-first / --try-last reorder by weight, file order among equals (spec §4.3, §5.5)', async () => {
  const j = await jigdoAt(
    work,
    [
      '[Servers]',
      'M=http://last/ --try-last',
      'M=http://plain1/',
      'M=http://first2/ --try-first=2',
      'M=http://halflast/ --try-last=0.5',
      'M=http://first/ --try-first',
      'M=http://plain2/ --unknown-option',
      'M=http://lastlast/ --try-last=3',
      'N=M:deep/ --try-first=10', // a weight on a chained label adds up
      '[Parts]',
      `${A}=M:a`,
      `${B}=N:b`,
      `${B}=http://bdirect/b --try-last`,
      `${B}=http://bplain/b`,
    ].join('\n'),
  );
  const labels = new LabelMap(j.servers);
  assert.deepEqual(partCandidates(j, labels, A).map(show), [
    'http://first2/a',
    'http://first/a',
    'http://plain1/a',
    'http://plain2/a',
    'http://halflast/a',
    'http://last/a',
    'http://lastlast/a',
  ]);
  // N's +10 lifts all of M's entries (shifted by their own weights) above the direct ones.
  assert.deepEqual(partCandidates(j, labels, B).map(show), [
    'http://first2/deep/b',
    'http://first/deep/b',
    'http://plain1/deep/b',
    'http://plain2/deep/b',
    'http://halflast/deep/b',
    'http://last/deep/b',
    'http://lastlast/deep/b',
    'http://bplain/b',
    'http://bdirect/b',
  ]);
});

test('the quoting sample: candidates follow the spec §5.5 order with Chain ftp (--try-last) demoted', async () => {
  const j = await loadJigdo(path.join(SAMPLES, 'quoting.jigdo'));
  const got = partCandidates(j, new LabelMap(j.servers), B).map(show);
  // ftp:// is not fetchable: classified, not dropped, and it sorts last because of --try-last.
  assert.equal(got[got.length - 1], 'unresolved ftp://chain2.example/sub/b c.bin');
  assert.deepEqual(got.slice(0, 6), [
    'http://h1.example/with space/b c.bin',
    'http://h2.example/xb c.bin',
    'http://h3.example/sq"uote/b c.bin',
    'http://h4.example/esc"aped%5C/b c.bin', // a backslash is asked for as one (%5C, as wget does): a URL parser reads it as /
    'http://chain1.example/sub/b c.bin',
    `http://bymd5.example/${B}`,
  ]);
});

test('a [Servers] label with an empty value stands for the empty string, as in jigdo-file print-missing-all', async () => {
  const j = await jigdoAt(work, ['[Servers]', 'E=', 'F=E:f', 'G= # a comment', 'H=G:h', '[Parts]', `${A}=F:p3`, `${B}=H:q`].join('\n'));
  const labels = new LabelMap(j.servers);
  assert.deepEqual(expandPart(j, labels, A).map((e) => e.text), ['fp3', `MD5Sum:${A}`]); // jigdo-file 0.8.0: fp3, MD5Sum:…
  assert.deepEqual(expandPart(j, labels, B).map((e) => e.text), ['hq', `MD5Sum:${B}`]);
});

test('relative references from a remote .jigdo keep #, a backslash and control characters as part of the name', async () => {
  const base = { kind: 'url' as const, url: 'http://h.example/d/x.jigdo' };
  const j = await parseJigdo(Buffer.from(`[Image]\nFilename=i.iso\nTemplate=t.template\n[Parts]\n${A}="a#1.bin"\n${B}="b\\\\c.bin"\n${C}="t\tx.bin"\n`), base);
  const labels = new LabelMap(j.servers);
  assert.deepEqual([A, B, C].map((k) => partCandidates(j, labels, k).map(show)), [
    ['http://h.example/d/a%231.bin'],
    ['http://h.example/d/b%5Cc.bin'],
    ['http://h.example/d/t%09x.bin'],
  ]);
});

// ---------------------------------------------------------------------------------------------
// Hostile input (issue 7, item 5): a fan-out of labels, URLs that do not parse

/** 6 levels of 8 values each: 8^6 = 262,144 strings per part. */
function fanOut(): string {
  const labels = ['Parts', 'L1', 'L2', 'L3', 'L4', 'L5'];
  const lines = ['[Servers]'];
  labels.forEach((label, level) => {
    for (let v = 0; v < 8; v++) lines.push(level < 5 ? `${label}=${labels[level + 1]}:d${v}/` : `${label}=http://m${v}/`);
  });
  return `${lines.join('\n')}\n[Parts]\n${A}=Parts:a.bin\n${A}=file:local/a.bin\n`;
}

test('a fan-out of labels: candidates are bounded (256), in spec order, quickly, and never throw', async () => {
  const j = await jigdoAt(work, fanOut());
  const started = Date.now();
  const labels = new LabelMap(j.servers);
  const got = partCandidates(j, labels, A);
  assert.equal(got.length, 256);
  assert.deepEqual(got.slice(0, 2).map(show), ['http://m0/d0/d0/d0/d0/d0/a.bin', 'http://m1/d0/d0/d0/d0/d0/a.bin']);
  assert.equal(expandPart(j, labels, A).length, 256);
  for (let i = 0; i < 1000; i++) partCandidates(j, labels, A); // a part looked up again and again stays cheap
  assert.ok(Date.now() - started < 5000, `${Date.now() - started} ms`);
});

test('a label chain deeper than the stack, and values that are no valid URL, never make partCandidates throw', async () => {
  const chain = Array.from({ length: 20_000 }, (_, i) => `C${i}=C${i + 1}:x/`).join('\n');
  const j = await jigdoAt(work, `[Servers]\n${chain}\nC20000=http://end/\n[Parts]\n${A}=C0:a.bin\n${A}=http://[bad/a.bin\n${A}=file:here.bin\n`);
  const got = partCandidates(j, new LabelMap(j.servers), A).map(show);
  assert.ok(got.includes(`file ${path.join(work, 'here.bin')}`), got.join('\n'));
  assert.ok(got.includes('unresolved http://[bad/a.bin'), got.join('\n'));
  // A remote .jigdo's relative value that is no URL: unresolved, not a crash.
  const remote = await parseJigdo(Buffer.from(`[Image]\nFilename=i.iso\nTemplate=t.template\n[Parts]\n${A}=//[bad/a.bin\n`), { kind: 'url', url: 'http://h/x.jigdo' });
  assert.deepEqual(partCandidates(remote, new LabelMap(remote.servers), A).map(show), ['unresolved //[bad/a.bin']);
});

test('long [Servers] values: a string past 8 KiB is no candidate, and a part\'s strings stop near 64 KiB in spec order', async () => {
  // From the fuzzer: a 70 KB value behind a fan-out of 256 gave its one part 18 MB of candidate text, seconds per part.
  const fan = Array.from({ length: 256 }, (_, i) => `M=http://m${i}/`).join('\n');
  const j = await jigdoAt(work, `[Servers]\n${fan}\nL=http://long/${'x'.repeat(70_000)}/\nL=M:${'d'.repeat(300)}/\n[Parts]\n${A}=L:a.bin\n${A}=http://last/a.bin\n`);
  const started = Date.now();
  const texts = partCandidates(j, new LabelMap(j.servers), A).map(show);
  assert.ok(Date.now() - started < 1000, `${Date.now() - started} ms`);
  assert.deepEqual(texts.filter((t) => t.length > 8192), [], 'no string past 8 KiB');
  assert.ok(texts.join('').length <= 64 * 1024, `${texts.join('').length} characters`);
  assert.equal(texts[0], `http://m0/${'d'.repeat(300)}/a.bin`, 'spec order kept');
  assert.ok(texts.length > 150 && texts.length < 256, `${texts.length} candidates: cut by their length, not their number`);
});

test('once a part\'s strings reach 64 KiB, its later [Parts] lines are not expanded at all (1,000 lines over a fan-out stay quick)', async () => {
  const fan = Array.from({ length: 256 }, (_, i) => `M=http://m${i}/${'d'.repeat(300)}/`).join('\n');
  const lines = Array.from({ length: 1000 }, (_, i) => `${A}=M:f${i}`).join('\n');
  const j = await jigdoAt(work, `[Servers]\n${fan}\n[Parts]\n${lines}\n`);
  const labels = new LabelMap(j.servers);
  const started = Date.now();
  for (let i = 0; i < 20; i++) {
    partCandidates(j, labels, A);
    expandPart(j, labels, A);
  }
  assert.ok(Date.now() - started < 2000, `${Date.now() - started} ms for 20 rounds`);
  const got = partCandidates(j, labels, A).map(show);
  assert.ok(got.every((t) => t.endsWith('/f0')), 'only the first line\'s strings: the budget ends there, in spec order');
  assert.ok(expandPart(j, labels, A).every((e) => !('origin' in e)), 'expandPart gives plain strings');
});
