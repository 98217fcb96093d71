// jigdo's ConfigFile syntax (spec §4.2): every rule, then the hand-written quoting sample as a whole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfigText, splitWords, type ConfigEvent } from '../../src/format/configfile.js';
import { SAMPLES } from '../helpers/cli.js';

test('parseConfigText: a section line jigdo-file refuses is ignored, and the section before it goes on', () => {
  const text = '[Servers]\nA=http://x/\n[Parts\nB=http://y/\n[Parts]junk\nC=z\n[Parts=x]\nD=w\n[ Parts ] # ok\nE=v\n';
  const events = parseConfigText(text).map((e) => (e.type === 'entry' ? `${e.section}:${e.label}` : e.type === 'ignored' ? `ignored ${e.line}: ${e.why}` : `${e.type}`));
  assert.deepEqual(events, [
    'section',
    'Servers:A',
    'ignored 3: section line with no "]" after its name',
    'Servers:B',
    'ignored 5: section line with text after its "]"',
    'Servers:C',
    'ignored 7: section line with no "]" after its name',
    'Servers:D',
    'section',
    'Parts:E',
  ]);
});

test('splitWords: a lone backslash at the end of an unclosed double quote is dropped, as jigdo-file drops it', () => {
  assert.deepEqual(splitWords('"abc\\'), ['abc']);
  assert.deepEqual(splitWords('"a\\"b" c'), ['a"b', 'c']);
  assert.deepEqual(splitWords('x\\'), ['x']);
});

test('splitWords: spaces and TABs separate words', () => {
  assert.deepEqual(splitWords('a b'), ['a', 'b']);
  assert.deepEqual(splitWords('  a \t\t b\tc  '), ['a', 'b', 'c']);
  assert.deepEqual(splitWords(''), []);
  assert.deepEqual(splitWords(' \t '), []);
});

test('splitWords: outside quotes, # ends the value, even in the middle of a word', () => {
  assert.deepEqual(splitWords('http://h2.example/x#frag'), ['http://h2.example/x']);
  assert.deepEqual(splitWords('a b #c d'), ['a', 'b']);
  assert.deepEqual(splitWords('#all comment'), []);
  assert.deepEqual(splitWords('a#'), ['a']);
});

test("splitWords: '…' is literal up to the next ', backslash included", () => {
  assert.deepEqual(splitWords("'a b'"), ['a b']);
  assert.deepEqual(splitWords("'a#b'"), ['a#b']);
  assert.deepEqual(splitWords("'a\\b'"), ['a\\b']);
  assert.deepEqual(splitWords("'say \"hi\"'"), ['say "hi"']);
  assert.deepEqual(splitWords("'a\\nb'"), ['a\\nb']); // no \n escape
});

test('splitWords: "…" keeps spaces, # and \' literal; backslash escapes the next character', () => {
  assert.deepEqual(splitWords('"a b"'), ['a b']);
  assert.deepEqual(splitWords('"a#b"'), ['a#b']);
  assert.deepEqual(splitWords('"it\'s"'), ["it's"]);
  assert.deepEqual(splitWords('"x\\"y"'), ['x"y']);
  assert.deepEqual(splitWords('"x\\\\y"'), ['x\\y']);
  assert.deepEqual(splitWords('"a\\nb"'), ['anb']); // no \n escape: \n is just n
  assert.deepEqual(splitWords('"http://h4.example/esc\\"aped\\\\/"'), ['http://h4.example/esc"aped\\/']);
});

test('splitWords: outside quotes a backslash escapes the next character', () => {
  assert.deepEqual(splitWords('b\\ c.bin'), ['b c.bin']);
  assert.deepEqual(splitWords('a\\#b'), ['a#b']);
  assert.deepEqual(splitWords("a\\'b"), ["a'b"]);
  assert.deepEqual(splitWords('a\\\\b'), ['a\\b']);
  assert.deepEqual(splitWords('a\\nb'), ['anb']);
});

test("splitWords: quotes mix inside one word; '' and \"\" give empty words", () => {
  assert.deepEqual(splitWords(`a'b c'"d e"f`), ['ab cd ef']);
  assert.deepEqual(splitWords(`x'#'y`), ['x#y']);
  assert.deepEqual(splitWords("''"), ['']);
  assert.deepEqual(splitWords('""'), ['']);
  assert.deepEqual(splitWords("'' x ''"), ['', 'x', '']);
  assert.deepEqual(splitWords(`'a'"b"c\\ d`), ['abc d']);
});

test('splitWords: unterminated quotes and trailing backslashes do not throw', () => {
  for (const v of ["'abc", '"abc', 'abc\\', '"abc\\', "'", '"', '\\']) {
    const words = splitWords(v);
    assert.ok(Array.isArray(words), v);
  }
  assert.deepEqual(splitWords("'abc"), ['abc']);
  assert.deepEqual(splitWords('"abc'), ['abc']);
});

type Entry = { section: string; label: string; rawValue: string; line: number };
const entries = (events: ConfigEvent[]): Entry[] =>
  events.filter((e): e is Extract<ConfigEvent, { type: 'entry' }> => e.type === 'entry').map(({ section, label, rawValue, line }) => ({ section, label, rawValue, line }));
const sections = (events: ConfigEvent[]): string[] => events.filter((e) => e.type === 'section').map((e) => (e as { name: string }).name);

test('parseConfigText: blank and # lines are ignored; leading blanks are ignored on every line', () => {
  const ev = parseConfigText('\n   \n# c\n  \t# indented comment\n[S]\n\t  a=1\n   \n');
  assert.deepEqual(sections(ev), ['S']);
  assert.deepEqual(entries(ev), [{ section: 'S', label: 'a', rawValue: '1', line: 6 }]);
});

test('parseConfigText: section lines allow blanks and a trailing comment; a name ended by [ blank = # and then not by ] is refused, as jigdo-file refuses it', () => {
  const text = ['[ Parts ]', '[\tServers\t]\t# comment', '[Image]   ', '[A=b]', '[B#c]', '[C[D]', '[E F]', '  [G]'].join('\n');
  const events = parseConfigText(text);
  assert.deepEqual(sections(events), ['Parts', 'Servers', 'Image', 'G']);
  assert.deepEqual(events.filter((e) => e.type === 'ignored').map((e) => e.line), [4, 5, 6, 7]); // jigdo-file 0.8.0: "Section name invalid", "No closing `]'"
});

test('parseConfigText: section names are case-sensitive', () => {
  const ev = parseConfigText('[parts]\nk=v\n[PARTS]\nk=w\n');
  assert.deepEqual(sections(ev), ['parts', 'PARTS']);
  assert.deepEqual(entries(ev).map((e) => e.section), ['parts', 'PARTS']);
});

test('parseConfigText: [Comment] and [comment] hide everything up to the next line starting with [', () => {
  const text = [
    '[Servers]',
    'A=1',
    '[Comment]',
    'B=2',
    '  [not a section start? it is: leading blanks are ignored]',
    '[Servers]',
    'C=3',
    '[comment]',
    'D=4',
    '# x',
    'E=5',
    '[Servers]',
    'F=6',
    '[COMMENT]', // not a comment section: case-sensitive
    'G=7',
  ].join('\n');
  const ev = entries(parseConfigText(text));
  assert.deepEqual(
    ev.map((e) => `${e.section}:${e.label}`),
    ['Servers:A', 'Servers:C', 'Servers:F', 'COMMENT:G'],
  );
});

test('parseConfigText: [Include URL] is its own event and ends the current section', () => {
  const ev = parseConfigText('[Servers]\nA=1\n[Include http://example.org/x.jigdo]\nB=2\n[Servers]\nC=3\n[Include\tother.jigdo ]\n');
  const includes = ev.filter((e) => e.type === 'include');
  assert.deepEqual(includes.map((e) => (e as { url: string }).url), ['http://example.org/x.jigdo', 'other.jigdo']);
  assert.deepEqual(
    entries(ev).map((e) => `${e.section}:${e.label}`),
    ['Servers:A', 'Include:B', 'Servers:C'],
    'B comes after [Include] and before a real section header: it belongs to no real section',
  );
});

test('parseConfigText: Label=Value with blanks around =; labels may be empty or contain spaces; first = splits', () => {
  const ev = entries(parseConfigText('[S]\n  Src  =  value here  \nmy label=x\n=empty label\na=b=c\nno equals sign\nTab\t=\tv'));
  assert.deepEqual(
    ev.map((e) => [e.label, e.rawValue]),
    [
      ['Src', 'value here  '],
      ['my label', 'x'],
      ['', 'empty label'],
      ['a', 'b=c'],
      ['Tab', 'v'],
    ],
  );
  assert.deepEqual(splitWords(ev[0]!.rawValue), ['value', 'here']);
});

test('parseConfigText: labels are kept exactly (case-sensitive)', () => {
  const ev = entries(parseConfigText('[Servers]\nsrc=a\nSrc=b\nSRC=c\n'));
  assert.deepEqual(ev.map((e) => e.label), ['src', 'Src', 'SRC']);
});

test('parseConfigText: one trailing CR per line is dropped (CRLF files)', () => {
  const lf = '[Servers]\nA=x y\n[Parts]\nP6D_Q1IkDFd5tl9ZIOws9A=A:a.bin\n';
  const crlf = lf.replace(/\n/g, '\r\n');
  assert.deepEqual(parseConfigText(crlf), parseConfigText(lf));
  assert.equal(entries(parseConfigText('[S]\r\nA=v\r\n'))[0]!.rawValue, 'v');
});

test('parseConfigText: there is no line continuation', () => {
  const ev = entries(parseConfigText('[S]\nA=one \\\nB=two\n'));
  assert.deepEqual(ev.map((e) => e.label), ['A', 'B']);
});

test('the quoting sample splits as spec §4.2 says, line by line', () => {
  const text = readFileSync(path.join(SAMPLES, 'quoting.jigdo'), 'utf8');
  const ev = parseConfigText(text);
  assert.deepEqual(sections(ev), ['Jigdo', 'Image', 'Servers', 'Parts', 'Parts']);
  assert.deepEqual(
    ev.filter((e) => e.type === 'include').map((e) => (e as { url: string }).url),
    ['http://example.org/other.jigdo'],
  );
  const got = entries(ev).map((e) => {
    // ShortInfo and Info are never split (spec §4.2 "Exceptions"): compare their raw text.
    const value = e.label === 'ShortInfo' || e.label === 'Info' ? e.rawValue.trim() : splitWords(e.rawValue);
    return [e.section, e.label, value];
  });
  assert.deepEqual(got, [
    ['Jigdo', 'Version', ['1.2']],
    ['Jigdo', 'Generator', ['hand-written']],
    ['Image', 'Filename', ['image with space.iso']],
    ['Image', 'Template', ['jf-md5-gzip.template']],
    ['Image', 'Template-MD5Sum', ['wC2h6DBX5nguti6GMWtIpA']],
    ['Image', 'ShortInfo', `'Quoting "test" image'`],
    ['Image', 'Info', `'Generated <b>by hand</b>'`],
    // The [Comment] section's bogus part line is gone.
    ['Servers', 'Src', ['http://h1.example/with space/']],
    ['Servers', 'Src', ['http://h2.example/x']],
    ['Servers', 'Src', ['http://h3.example/sq"uote/']],
    ['Servers', 'Src', ['http://h4.example/esc"aped\\/']],
    ['Servers', 'Src', ['Chain:sub/']],
    ['Servers', 'Chain', ['http://chain1.example/']],
    ['Servers', 'Chain', ['ftp://chain2.example/', '--try-last']],
    ['Servers', 'MD5Sum', ['http://bymd5.example/']],
    ['Parts', 'P6D_Q1IkDFd5tl9ZIOws9A', ['Src:a.bin', 'extra', 'words', 'are', 'ignored', 'by', 'jigdo-file']],
    ['Parts', 'P6D_Q1IkDFd5tl9ZIOws9A', ['Undefined:foo/a.bin']],
    ['Parts', 'P6D_Q1IkDFd5tl9ZIOws9A', ['relative/path/a.bin']],
    ['Parts', 'P6D_Q1IkDFd5tl9ZIOws9A', ['file:/abs/path/a.bin']],
    ['Parts', 'P6D_Q1IkDFd5tl9ZIOws9A', ['http://direct.example/a.bin']],
    ['Parts', 'QiYNQ8Ib2_eZJAaaz5Uwtg', ['Src:b c.bin']],
  ]);
  // Line numbers point at the source lines.
  const lines = text.split('\n');
  for (const e of entries(ev)) assert.ok(lines[e.line - 1]!.includes(e.label), `line ${e.line} holds ${e.label}`);
});
