/**
 * Failure classification: every error undici (or Node's sockets, DNS, URL parser) throws becomes a FetchError
 * of the kind its callers act on (resume, next mirror, give up on this mirror, ours not the mirror's), and
 * `permanent` says which kinds and statuses are not worth asking the same URL again.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { errors } from 'undici';
import { FetchError, toFetchError, type FailureKind } from '../../src/network/fetch-error.js';

const URL_ = 'http://mirror.example/debian/pool/a.deb';

/** A Node system error as sockets and DNS throw it. */
const sysError = (code: string): Error => Object.assign(new Error(`${code} something`), { code });

describe('toFetchError: undici errors', () => {
  const cases: Array<[string, Error, FailureKind, RegExp]> = [
    ['HeadersTimeoutError', new errors.HeadersTimeoutError(), 'timeout', /^no response headers in time$/],
    ['BodyTimeoutError', new errors.BodyTimeoutError(), 'timeout', /^stalled: no data in time$/],
    ['ConnectTimeoutError', new errors.ConnectTimeoutError(), 'timeout', /^connect timeout$/],
    ['ResponseContentLengthMismatchError', new errors.ResponseContentLengthMismatchError(), 'short', /^body shorter than its Content-Length$/],
    ['SocketError', new errors.SocketError('other side closed'), 'reset', /^connection cut \(other side closed\)$/],
    ['RequestAbortedError', new errors.RequestAbortedError(), 'aborted', /^aborted$/],
    // undici's own AbortError (untyped in its .d.ts) has code UND_ERR_ABORT, which no case names: its name makes it 'aborted'.
    ['AbortError', Object.assign(new Error('stop'), { name: 'AbortError', code: 'UND_ERR_ABORT' }), 'aborted', /^aborted$/],
  ];
  for (const [name, err, kind, message] of cases) {
    test(`${name} → ${kind}`, () => {
      const e = toFetchError(URL_, err);
      assert.ok(e instanceof FetchError);
      assert.equal(e.kind, kind);
      assert.match(e.message, message);
      assert.equal(e.url, URL_);
      assert.equal(e.status, undefined);
    });
  }
});

describe('toFetchError: system errors, by code or by the code of their cause', () => {
  const cases: Array<[string, FailureKind, string]> = [
    ['ECONNRESET', 'reset', 'connection cut (ECONNRESET)'],
    ['EPIPE', 'reset', 'connection cut (EPIPE)'],
    ['ECONNREFUSED', 'connect', 'cannot connect (ECONNREFUSED)'],
    ['ENOTFOUND', 'connect', 'cannot connect (ENOTFOUND)'],
    ['EAI_AGAIN', 'connect', 'cannot connect (EAI_AGAIN)'],
    ['EHOSTUNREACH', 'connect', 'cannot connect (EHOSTUNREACH)'],
    ['ENETUNREACH', 'connect', 'cannot connect (ENETUNREACH)'],
    ['EHOSTDOWN', 'connect', 'cannot connect (EHOSTDOWN)'],
    ['ABORT_ERR', 'aborted', 'aborted'],
  ];
  for (const [code, kind, message] of cases) {
    test(`${code} → ${kind}`, () => {
      const direct = toFetchError(URL_, sysError(code));
      assert.equal(direct.kind, kind);
      assert.equal(direct.message, message);
      // fetch() and some undici paths wrap the system error: its cause's code decides.
      const wrapped = toFetchError(URL_, new TypeError('fetch failed', { cause: sysError(code) }));
      assert.equal(wrapped.kind, kind);
      assert.equal(wrapped.message, message);
    });
  }

  test('an error of its own code wins over its cause', () => {
    const err = Object.assign(new Error('x', { cause: sysError('ECONNREFUSED') }), { code: 'ECONNRESET' });
    assert.equal(toFetchError(URL_, err).kind, 'reset');
  });
});

describe('toFetchError: TLS failures are permanent, and say TLS', () => {
  // As undici throws them (the messages seen from Node 20: a plain-HTTP server on an https URL, a self-signed certificate).
  const cases: Array<[string, string, string]> = [
    ['ERR_SSL_WRONG_VERSION_NUMBER', '80FC08DD687F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n',
      'TLS: wrong version number (the server does not speak TLS there: http, not https?)'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate', 'TLS: self-signed certificate'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain', 'TLS: self-signed certificate in certificate chain'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate', 'TLS: unable to verify the first certificate'],
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'unable to get local issuer certificate', 'TLS: unable to get local issuer certificate'],
    ['CERT_HAS_EXPIRED', 'certificate has expired', 'TLS: certificate has expired'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames: IP: 10.0.0.1 is not in the cert's list: 127.0.0.1",
      "TLS: Hostname/IP does not match certificate's altnames: IP: 10.0.0.1 is not in the cert's list: 127.0.0.1"],
    ['ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', '', 'TLS: err ssl sslv3 alert handshake failure'],
  ];
  for (const [code, message, expected] of cases) {
    test(`${code} → tls, permanent`, () => {
      for (const err of [Object.assign(new Error(message), { code }), new TypeError('fetch failed', { cause: Object.assign(new Error(message), { code }) })]) {
        const e = toFetchError(URL_, err);
        assert.equal(e.kind, 'tls');
        assert.equal(e.permanent, true, 'not asked again every round');
        assert.equal(e.message, expected);
      }
    });
  }

  test('a damaged record or a server-side internal TLS error is a cut of that connection: tried again, still said TLS', () => {
    for (const code of ['ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC', 'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR', 'ERR_SSL_SSLV3_ALERT_BAD_RECORD_MAC']) {
      const e = toFetchError(URL_, Object.assign(new Error('x'), { code }));
      assert.equal(e.kind, 'reset', code);
      assert.equal(e.permanent, false, code);
      assert.match(e.message, /^TLS: /);
    }
  });

  test('a TLS handshake that stalls is a timeout, not a refusal', () => {
    const e = toFetchError(URL_, Object.assign(new Error('TLS handshake timeout'), { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' }));
    assert.equal(e.kind, 'timeout');
    assert.equal(e.permanent, false);
  });
});

describe('toFetchError: what undici or URL refuse (redirects are named by redirected-get.ts)', () => {
  test('undici InvalidArgumentError: a protocol failure, in our words', () => {
    const e = toFetchError(URL_, new errors.InvalidArgumentError('maxRedirections is not supported'));
    assert.deepEqual([e.kind, e.message, e.permanent], ['protocol', 'request refused by the HTTP client: maxRedirections is not supported', true]);
  });

  test("ERR_INVALID_URL names the address when it has one", () => {
    let thrown: unknown;
    try {
      new URL('http://[bad');
    } catch (err) {
      thrown = err;
    }
    const e = toFetchError(URL_, thrown);
    assert.equal(e.kind, 'protocol');
    assert.equal(e.message, 'malformed address ("http://[bad")');
    const bare = toFetchError(URL_, Object.assign(new TypeError('Invalid URL'), { code: 'ERR_INVALID_URL' }));
    assert.equal(bare.message, 'malformed address');
  });
});

describe('toFetchError: anything else', () => {
  test('an AbortError by name (AbortSignal) is aborted; an unknown error is a cut, with its message', () => {
    const signal = AbortSignal.abort();
    assert.equal(toFetchError(URL_, signal.reason).kind, 'aborted');
    const e = toFetchError(URL_, new Error('premature close'));
    assert.equal(e.kind, 'reset');
    assert.equal(e.message, 'premature close');
    assert.equal(toFetchError(URL_, 'a string').kind, 'reset');
  });

  test('a FetchError is passed through as it is', () => {
    const original = new FetchError('http://other/', 'mismatch', 'wrong bytes');
    assert.equal(toFetchError(URL_, original), original);
  });
});

describe('permanent: not worth asking the same URL again', () => {
  test('by kind', () => {
    const permanent: Record<FailureKind, boolean> = {
      'not-found': true,
      'wrong-size': true,
      mismatch: true,
      protocol: true,
      refused: true,
      tls: true,
      status: false, // decided by the status (below); none given: may pass
      connect: false,
      timeout: false,
      slow: false,
      reset: false,
      short: false,
      'no-range': false,
      down: false,
      aborted: false,
      local: false,
    };
    for (const [kind, expected] of Object.entries(permanent) as Array<[FailureKind, boolean]>) {
      assert.equal(new FetchError(URL_, kind, 'x').permanent, expected, kind);
    }
  });

  test("'status' by status: a 4xx is the file's, except 408 and 429; a 5xx is the server's mood", () => {
    const expected: Array<[number, boolean]> = [
      [400, true], [401, true], [403, true], [416, true], [451, true], [499, true],
      [408, false], [429, false],
      [500, false], [502, false], [503, false], [504, false],
      [300, false], [399, false],
    ];
    for (const [status, permanent] of expected) {
      assert.equal(new FetchError(URL_, 'status', `HTTP ${status}`, status).permanent, permanent, `HTTP ${status}`);
    }
  });
});
