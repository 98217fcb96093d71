/**
 * What an HTTP answer means, from its status and headers: which statuses fail and how (a redirect that
 * reaches us was one too many), and what a 2xx to a Range request holds (the range, or the whole file
 * from a server that ignores Range), with the file's size checked against the part's.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FetchError } from '../../src/network/fetch-error.js';
import { MAX_REDIRECTS, rangeAnswer, retryAfterMs, statusFailure, validatorOf } from '../../src/network/http-answer.js';

const U = 'http://m.example/f';

function failure(fn: () => unknown): FetchError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof FetchError, String(err));
    return err;
  }
  assert.fail('did not throw');
}

describe('statusFailure', () => {
  test('2xx is no failure', () => {
    for (const s of [200, 204, 206, 299]) assert.equal(statusFailure(U, s), undefined, String(s));
  });

  test('404 and 410 are not-found; other statuses are status failures carrying the status', () => {
    for (const [s, kind] of [[404, 'not-found'], [410, 'not-found'], [403, 'status'], [500, 'status'], [304, 'status'], [199, 'status']] as const) {
      const e = statusFailure(U, s)!;
      assert.equal(e.kind, kind, String(s));
      assert.equal(e.status, s);
      assert.equal(e.message, `HTTP ${s}`);
    }
  });

  test('a redirect that reaches us: too many, or one without a Location (protocol, permanent)', () => {
    const many = statusFailure(U, 302, { location: 'http://next.example/f' })!;
    assert.equal(many.kind, 'protocol');
    assert.equal(many.message, `HTTP 302: too many redirects (more than ${MAX_REDIRECTS}; the next one to http://next.example/f)`);
    assert.equal(many.permanent, true);
    const nowhere = statusFailure(U, 307)!;
    assert.equal(nowhere.message, 'HTTP 307: a redirect without a Location');
    assert.equal(nowhere.status, 307);
    // 305 and the other codes never followed were called one redirect too many.
    for (const s of [305, 306, 399]) {
      const unfollowed = statusFailure(U, s, { location: 'http://proxy.example:3128/' })!;
      assert.equal(unfollowed.message, `HTTP ${s}: a redirect of a kind that is not followed (to http://proxy.example:3128/)`);
      assert.equal(unfollowed.kind, 'protocol');
    }
  });
});

describe('Retry-After', () => {
  test('a 503 or 429 carries its Retry-After in ms, as seconds or as an HTTP date; other statuses do not', () => {
    assert.equal(statusFailure(U, 503, { 'retry-after': '5' })!.retryAfterMs, 5000);
    assert.equal(statusFailure(U, 429, { 'retry-after': ' 0 ' })!.retryAfterMs, 0);
    assert.equal(statusFailure(U, 500, { 'retry-after': '5' })!.retryAfterMs, undefined);
    assert.equal(statusFailure(U, 503)!.retryAfterMs, undefined);
    const now = Date.parse('Mon, 07 Dec 2026 10:00:00 GMT');
    assert.equal(retryAfterMs('Mon, 07 Dec 2026 10:00:12 GMT', now), 12_000);
    assert.equal(retryAfterMs('Mon, 07 Dec 2026 09:59:00 GMT', now), 0, 'a date gone by: at once');
    assert.equal(retryAfterMs('Monday, 07-Dec-26 10:00:03 GMT', now), 3000, 'RFC 850');
    assert.equal(retryAfterMs('Mon Dec  7 10:00:04 2026', now), 4000, 'asctime');
    // Not HTTP-dates, but sent by servers (Python's formatdate, lower case, UTC): heard all the same (a review found the
    // strict parser of serve's conditional dates, shared at first, dropped them, and the host was not paused).
    for (const [loose, ms] of [['Mon, 07 Dec 2026 10:00:05 -0000', 5000], ['mon, 07 dec 2026 10:00:06 gmt', 6000], ['Mon, 07 Dec 2026 10:00:07 UTC', 7000], ['Mon, 07-Dec-2026 10:00:08 GMT', 8000]] as const) {
      assert.equal(retryAfterMs(loose, now), ms, loose);
    }
    for (const bad of ['soon', '-3', '1.5', '', undefined, ['5', '6']]) assert.equal(retryAfterMs(bad, now), undefined, String(bad));
  });
});

describe('rangeAnswer', () => {
  const answer = (statusCode: number, headers: Record<string, string>) => ({ statusCode, headers });

  test('206 with a Content-Range from the byte asked: the range, and the size stated', () => {
    assert.deepEqual(rangeAnswer(U, answer(206, { 'content-range': 'bytes 100-199/1000' }), { start: 100, end: 200, total: 1000 }), { whole: false, stated: 1000, stop: 200 });
    assert.deepEqual(rangeAnswer(U, answer(206, { 'content-range': 'bytes 100-199/*' }), { start: 100, end: 200, total: 1000 }), { whole: false, stated: undefined, stop: 200 });
  });

  test('206 to an open-ended request: the body stops at the size stated, else where its Content-Range ends', () => {
    assert.deepEqual(rangeAnswer(U, answer(206, { 'content-range': 'bytes 100-999/1000' }), { start: 100 }), { whole: false, stated: 1000, stop: 1000 });
    assert.deepEqual(rangeAnswer(U, answer(206, { 'content-range': 'bytes 100-199/*' }), { start: 100 }), { whole: false, stated: undefined, stop: 200 });
  });

  test('206 with a bad Content-Range, or one from another byte, is a protocol failure', () => {
    assert.equal(failure(() => rangeAnswer(U, answer(206, { 'content-range': 'bytes 100-99/*' }), { start: 100 })).message, 'bad Content-Range "bytes 100-99/*"');
    assert.equal(failure(() => rangeAnswer(U, answer(206, {}), { start: 0, end: 10 })).message, 'bad Content-Range ""');
    assert.equal(failure(() => rangeAnswer(U, answer(206, { 'content-range': 'bytes=0-9/10' }), { start: 0 })).kind, 'protocol');
    const e = failure(() => rangeAnswer(U, answer(206, { 'content-range': 'bytes 0-99/1000' }), { start: 100, end: 200 }));
    assert.equal(e.kind, 'protocol');
    assert.equal(e.message, 'asked for bytes from 100, got Content-Range bytes 0-99/1000');
  });

  test('200 to a request from byte 0: the whole file, its size from Content-Length when given', () => {
    assert.deepEqual(rangeAnswer(U, answer(200, { 'content-length': '1000' }), { start: 0, end: 200, total: 1000 }), { whole: true, stated: 1000, stop: 1000 });
    assert.deepEqual(rangeAnswer(U, answer(200, {}), { start: 0 }), { whole: true, stated: undefined, stop: Infinity });
  });

  test('200 to a request from another byte: the server ignores Range (no-range, not permanent)', () => {
    const e = failure(() => rangeAnswer(U, answer(200, { 'content-length': '1000' }), { start: 100, end: 200, total: 1000 }));
    assert.equal(e.kind, 'no-range');
    assert.equal(e.status, 200);
    assert.equal(e.permanent, false);
  });

  test('200 to a request sent with If-Range: the file changed, its new version whole, whatever its size', () => {
    assert.deepEqual(rangeAnswer(U, answer(200, { 'content-length': '1200' }), { start: 100, total: 1000, ifRange: '"v1"' }), { whole: true, stated: 1200, stop: 1200 });
    assert.deepEqual(rangeAnswer(U, answer(206, { 'content-range': 'bytes 100-999/1000' }), { start: 100, total: 1000, ifRange: '"v1"' }), { whole: false, stated: 1000, stop: 1000 });
  });

  test('the validator for If-Range: a strong ETag, else Last-Modified, else none', () => {
    const date = 'Tue, 14 Nov 2023 22:13:20 GMT';
    assert.equal(validatorOf({ etag: '"abc"', 'last-modified': date }), '"abc"');
    assert.equal(validatorOf({ etag: 'W/"abc"', 'last-modified': date }), date, 'a weak ETag may not be used for ranges');
    assert.equal(validatorOf({ etag: 'W/"abc"' }), undefined);
    assert.equal(validatorOf({}), undefined);
  });

  test('a stated size other than the part\'s is wrong-size (permanent); unknown sizes are not checked', () => {
    const e = failure(() => rangeAnswer(U, answer(206, { 'content-range': 'bytes 0-9/999' }), { start: 0, end: 10, total: 1000 }));
    assert.equal(e.kind, 'wrong-size');
    assert.equal(e.message, 'the file there has 999 bytes, expected 1000');
    assert.equal(e.permanent, true);
    assert.equal(failure(() => rangeAnswer(U, answer(200, { 'content-length': '5' }), { start: 0, total: 1000 })).kind, 'wrong-size');
    assert.deepEqual(rangeAnswer(U, answer(200, { 'content-length': '5' }), { start: 0 }), { whole: true, stated: 5, stop: 5 });
  });
});
