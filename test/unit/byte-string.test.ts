// Names as byte strings (issue 13, item 1): a .jigdo's non-UTF-8 bytes decode the way Python's
// surrogateescape does and come back as the exact bytes for the file system, as %XX in URLs and as \xNN in
// messages. The expected decodings below are Python 3's `bytes.decode('utf-8', 'surrogateescape')`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodeBytes, encodeBytes, fsPath, hasEscapedBytes, percentDecode, percentEncodeComponent, quoted, shown, urlText } from '../../src/format/byte-string.js';

const bytes = (...b: number[]): Buffer => Buffer.from(b);

test('every byte, alone and in every pair, decodes and encodes back to itself', () => {
  for (let a = 0; a < 256; a++) {
    const one = decodeBytes(bytes(a));
    assert.equal(one, a < 0x80 ? String.fromCharCode(a) : String.fromCharCode(0xdc00 + a), `byte ${a}`);
    assert.deepEqual(encodeBytes(one), bytes(a));
    for (let b = 0; b < 256; b++) {
      const pair = bytes(a, b);
      assert.ok(encodeBytes(decodeBytes(pair)).equals(pair), `bytes ${a} ${b}`);
    }
  }
});

test('random byte strings round-trip, and valid UTF-8 decodes as Node decodes it', () => {
  let seed = 7;
  const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
  for (let i = 0; i < 2000; i++) {
    const buf = Buffer.from(Array.from({ length: 1 + (i % 40) }, next));
    assert.ok(encodeBytes(decodeBytes(buf)).equals(buf), buf.toString('hex'));
  }
  const text = 'Müller € 𐂀 \ufffd plain';
  assert.equal(decodeBytes(Buffer.from(text)), text);
  assert.ok(encodeBytes(text).equals(Buffer.from(text)));
});

test('invalid sequences escape byte by byte, as Python surrogateescape does', () => {
  const cases: Array<[Buffer, string]> = [
    [Buffer.from('caf\xe9', 'latin1'), 'caf\udce9'],
    [bytes(0xe2, 0x82), '\udce2\udc82'], // truncated €
    [bytes(0xe2, 0x82, 0x78), '\udce2\udc82x'],
    [bytes(0xc0, 0xaf), '\udcc0\udcaf'], // overlong /
    [bytes(0xed, 0xa0, 0x80), '\udced\udca0\udc80'], // an encoded UTF-16 surrogate
    [bytes(0xf4, 0x90, 0x80, 0x80), '\udcf4\udc90\udc80\udc80'], // above U+10FFFF
    [bytes(0xf0, 0x90, 0x80), '\udcf0\udc90\udc80'],
    [bytes(0xe2, 0x82, 0xac), '\u20ac'],
    [bytes(0xf0, 0x90, 0x82, 0x80), '\u{10080}'],
    [bytes(0xef, 0xbf, 0xbd), '\ufffd'], // a real U+FFFD stays one
  ];
  for (const [buf, expected] of cases) assert.equal(decodeBytes(buf), expected, buf.toString('hex'));
  // A part of a buffer, as the .jigdo reader decodes one line.
  assert.equal(decodeBytes(Buffer.from('x=caf\xe9\nnext', 'latin1'), 2, 6), 'caf\udce9');
});

test('only escaped bytes count as escaped: a surrogate pair (U+10080 is D800 DC80) is a character', () => {
  assert.equal(hasEscapedBytes('\u{10080}'), false);
  assert.equal(hasEscapedBytes('caf\udce9'), true);
  assert.equal(hasEscapedBytes('café'), false);
  assert.equal(shown('\u{10080}'), '\u{10080}');
});

test('urlText percent-encodes the escaped bytes exactly; the URL parser does the rest', () => {
  const name = decodeBytes(Buffer.from('http://h/pool/caf\xe9 M\x81ller.bin', 'latin1'));
  assert.equal(urlText(name), 'http://h/pool/caf%E9 M%81ller.bin');
  assert.equal(new URL(urlText(name)).href, 'http://h/pool/caf%E9%20M%81ller.bin');
  assert.equal(new URL(urlText('http://h/café')).href, 'http://h/caf%C3%A9'); // valid UTF-8: its bytes
  assert.equal(urlText('http://h/plain'), 'http://h/plain');
});

test('urlText sends a % that starts no escape as %25, as wget does, and keeps the escapes there are', () => {
  assert.equal(urlText('http://h/50%off.bin'), 'http://h/50%25off.bin');
  assert.equal(urlText('http://h/x%'), 'http://h/x%25');
  assert.equal(urlText('http://h/x%4'), 'http://h/x%254');
  assert.equal(urlText('http://h/%zz%41%e9'), 'http://h/%25zz%41%e9');
  assert.equal(new URL(urlText('http://h/50%off.bin')).pathname, '/50%25off.bin');
  for (const url of ['http://h/50%off.bin', 'http://h/a#b%', 'http://h/%41']) assert.equal(urlText(urlText(url)), urlText(url), url);
});

test('percentDecode gives the same string as the raw bytes would', () => {
  assert.equal(percentDecode('caf%E9.template'), decodeBytes(Buffer.from('caf\xe9.template', 'latin1')));
  assert.equal(percentDecode('caf%C3%A9%20x'), 'café x');
  assert.equal(percentDecode('a%2Fb'), 'a/b');
  for (const bad of ['bad%zz', 'x%', 'x%4']) assert.throws(() => percentDecode(bad), /malformed %-escape/, bad);
  for (let b = 0; b < 256; b++) {
    const hex = `%${b.toString(16).padStart(2, '0')}`;
    assert.ok(encodeBytes(percentDecode(hex)).equals(bytes(b)), hex);
  }
});

test('shown writes each escaped byte as \\xNN', () => {
  assert.equal(shown(decodeBytes(Buffer.from('M\x81ller caf\xe9', 'latin1'))), 'M\\x81ller caf\\xe9');
  assert.equal(shown('plain café'), 'plain café');
  assert.equal(shown('two\nlines'), 'two\nlines', 'a message may span lines (a list of missing parts)');
  // quoted: a value of an input file in a one-line message; a carriage return or newline would break the line.
  assert.equal(quoted('a\rb\nc\x00\x7f\td'), 'a\\x0db\\x0ac\\x00\\x7f\\x09d');
  assert.equal(quoted(decodeBytes(Buffer.from('caf\xe9\r', 'latin1'))), 'caf\\xe9\\x0d');
  // What a terminal acts on besides C0: C1 (U+009B is CSI: the bytes C2 9B), line separators and bidi overrides, as
  // \uNNNN (not \x9b: that is the non-UTF-8 byte 0x9B); plain non-ASCII text stays as it is.
  assert.equal(quoted(decodeBytes(Buffer.from('a\xc2\x9b2J\xc2\x9d0;t\xc2\x85\xe2\x80\xae\xe2\x80\xa8\xe2\x81\xa6', 'latin1'))), 'a\\u009b2J\\u009d0;t\\u0085\\u202e\\u2028\\u2066');
  assert.equal(quoted(decodeBytes(Buffer.from('\x9b', 'latin1'))), '\\x9b');
  assert.equal(quoted('Müller € 𐂀 \u00a0 ok'), 'Müller € 𐂀 \u00a0 ok');
});

test('fsPath opens a file by its exact bytes; a plain name stays a string', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-bytes-'));
  try {
    const raw = Buffer.concat([Buffer.from(`${dir}/`), Buffer.from('caf\xe9 M\x8archen.bin', 'latin1')]);
    await writeFile(raw, 'x');
    const name = decodeBytes(raw);
    assert.ok(Buffer.isBuffer(fsPath(name)));
    assert.equal((await stat(fsPath(name))).size, 1);
    await assert.rejects(stat(name), { code: 'ENOENT' }); // the string as such names another file (U+FFFD)
    const listed = await readdir(fsPath(dir), { encoding: 'buffer' });
    assert.equal(path.join(dir, decodeBytes(listed[0]!)), name);
    assert.equal(fsPath('/plain/café'), '/plain/café');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('percentEncodeComponent: encodeURIComponent for text, the exact bytes for escaped ones', () => {
  for (const plain of ['disc 1.iso', 'café/ü?#&', "a-_.!~*'()z"]) assert.equal(percentEncodeComponent(plain), encodeURIComponent(plain));
  const name = decodeBytes(Buffer.from('M\x81ller café.iso', 'latin1'));
  assert.equal(percentEncodeComponent(name), 'M%81ller%20caf%E9.iso');
  assert.equal(percentDecode(percentEncodeComponent(name)), name);
});

test('8 MiB of Latin-1 decodes in linear time, exactly (found by the fuzzer: seconds per MB, char by char)', () => {
  const bytes = Buffer.alloc(8 << 20, 0xe9);
  bytes.write('caf\u00e9 ok', 1000);
  const t0 = Date.now();
  const text = decodeBytes(bytes);
  const ms = Date.now() - t0;
  assert.ok(ms < 3000, `took ${ms} ms`);
  const t1 = Date.now();
  assert.ok(encodeBytes(text).equals(bytes));
  const back = Date.now() - t1;
  assert.ok(back < 3000, `encoding back took ${back} ms`); // (~19 s with a buffer per escaped byte)
});
