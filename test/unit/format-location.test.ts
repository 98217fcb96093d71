// Locations named by a .jigdo (issue 7, item 4): a template's basename taken from a URL must stay one
// plain local file name, and a bad URL or %-escape is one clear error, not "URI malformed".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { JigdoError } from '../../src/format/errors.js';
import { baseName, locationFromUser, resolveReference } from '../../src/format/location.js';
import { parseJigdo } from '../../src/format/jigdo.js';

const url = (u: string) => ({ kind: 'url' as const, url: u });

test('baseName: decoded, but never a name that leaves its folder', () => {
  assert.equal(baseName(url('http://h/x/debian%20dvd.template')), 'debian dvd.template');
  assert.equal(baseName({ kind: 'file', path: '/a/b/x.template' }), 'x.template');
  for (const u of ['http://h/x/..%2F..%2Fetc%2Fpasswd', 'http://h/x/%2E%2E', 'http://h/x/.', 'http://h/x/', 'http://h/x/a%00b', 'http://h/x/a%5Cb']) {
    assert.equal(baseName(url(u)), undefined, u);
  }
  assert.throws(() => baseName(url('http://h/x/bad%zz.template')), /malformed %-escape in "bad%zz\.template"/);
});

test('URLs that do not parse are a JigdoError naming the file they came from', () => {
  const from = { kind: 'file' as const, path: '/srv/x.jigdo' };
  assert.throws(() => resolveReference('http://[bad/x', from), (err: unknown) => err instanceof JigdoError && err.message === '/srv/x.jigdo: "http://[bad/x" is not a valid URL');
  assert.throws(() => resolveReference('//[bad/x', url('http://h/x.jigdo')), (err: unknown) => err instanceof JigdoError && err.message.startsWith('http://h/x.jigdo: '));
  assert.throws(() => locationFromUser('http://[bad'), (err: unknown) => err instanceof JigdoError && /not a valid URL/.test(err.message));
});

test('a URL of another scheme given by the user is refused, not looked for as a relative path (found by a probe)', () => {
  assert.throws(() => locationFromUser('ftp://x/y.jigdo'), (err: unknown) => err instanceof JigdoError && err.message === 'ftp://x/y.jigdo: only http:// and https:// URLs are fetched');
  assert.deepEqual(locationFromUser('./ftp://x/y.jigdo'), { kind: 'file', path: path.resolve('ftp:/x/y.jigdo') }, 'a file of that name, asked for so');
  assert.equal(locationFromUser('HTTPS://h/x.jigdo').kind, 'url');
});

test('a remote .jigdo never names a local file: file: and absolute paths from a URL stay remote or unresolved', async () => {
  const remote = { kind: 'url' as const, url: 'http://mirror.example/cd/x.jigdo' };
  assert.equal(resolveReference('file:/etc/passwd', remote), undefined);
  assert.equal(resolveReference('file:///etc/passwd', remote), undefined);
  assert.deepEqual(resolveReference('/etc/passwd', remote), { kind: 'url', url: 'http://mirror.example/etc/passwd' });
  assert.deepEqual(resolveReference('../../etc/passwd', remote), { kind: 'url', url: 'http://mirror.example/etc/passwd' });
  const text = Buffer.from('[Jigdo]\nVersion=1.1\n[Include file:/etc/passwd]\n[Image]\nFilename=x.iso\nTemplate=x.template\n');
  await assert.rejects(parseJigdo(text, remote, async () => Buffer.from('')), (err: unknown) => err instanceof JigdoError && /may not read local files/.test(err.message));
});
