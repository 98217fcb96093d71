/** The rules a download of unknown size is held to: its first bytes (checked as they arrive) and its size. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HeadCheck, tooLarge } from '../../src/network/body-rules.js';

const U = 'http://m.example/x.template';
const rules = { magic: Buffer.from('JigsawDownload template '), magicWhat: 'a jigdo template' };

describe('HeadCheck', () => {
  test('the magic split over several chunks passes, and later chunks are not looked at', () => {
    const h = new HeadCheck(U, rules);
    h.add(Buffer.from('Jigsaw'));
    h.add(Buffer.from('Download templ'));
    h.add(Buffer.from('ate 1.2 jigdo-file/0.7.3\r\n<html>'));
    h.add(Buffer.from('anything'));
    h.end();
  });

  test('refused at the first chunk that departs from it, naming what it starts with (printable only)', () => {
    const h = new HeadCheck(U, rules);
    h.add(Buffer.from('Jigsaw'));
    assert.throws(() => h.add(Buffer.from('\x00\x01<html><body>captive portal')), {
      name: 'FetchError',
      kind: 'refused',
      message: 'not a jigdo template (it starts with "Jigsaw..<html><body>capt")',
    });
  });

  test('a body shorter than the magic is refused when it ends', () => {
    const h = new HeadCheck(U, { magic: Buffer.from('MAGIC') });
    h.add(Buffer.from('MAG'));
    assert.throws(() => h.end(), { kind: 'refused', message: 'not the file wanted (it starts with "MAG")' });
  });
});

describe('tooLarge', () => {
  test('with the stated size: not downloaded; without: stopped at the limit', () => {
    const r = { maxBytes: 1000, maxWhy: "the cache's limit of 1000 bytes" };
    assert.equal(tooLarge(U, r, 5000).message, "it has 5000 bytes, more than the cache's limit of 1000 bytes: not downloaded");
    assert.equal(tooLarge(U, r).message, "it goes on past the cache's limit of 1000 bytes: download stopped there");
    assert.equal(tooLarge(U, { maxBytes: 10 }, 11).message, 'it has 11 bytes, more than 10 bytes: not downloaded');
    assert.equal(tooLarge(U, r).kind, 'refused');
    assert.equal(tooLarge(U, r).permanent, true);
  });
});
