import { test } from 'node:test';
import assert from 'node:assert/strict';
import { failedAtProxy, proxyFor, withoutPassword } from '../../src/network/proxy-env.js';

/** Node's errors as a failed connect or look-up leaves them (undici's fetch() wraps them in a cause). */
const refused = (address: string, port: number) => Object.assign(new Error(`connect ECONNREFUSED ${address}:${port}`), { code: 'ECONNREFUSED', syscall: 'connect', address, port });
const notFound = (hostname: string) => Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname });

test('failedAtProxy: the connection that failed was the proxy\'s only when the error says so', () => {
  const mirror = 'http://mirror.example/debian/pool/x.deb';
  assert.equal(failedAtProxy('http://127.0.0.1:9', mirror, refused('127.0.0.1', 9)), true);
  assert.equal(failedAtProxy('http://u:p@127.0.0.1:9', mirror, { cause: refused('127.0.0.1', 9) }), true, 'wrapped in a cause');
  assert.equal(failedAtProxy('http://127.0.0.1:9', 'http://127.0.0.1:8080/x', refused('127.0.0.1', 8080)), false, 'the mirror refused (NO_PROXY)');
  assert.equal(failedAtProxy('http://[::1]:3128', mirror, refused('::1', 3128)), true);
  assert.equal(failedAtProxy('http://proxy.lan:3128', mirror, refused('10.0.0.5', 3128)), true, 'a named proxy on its own port');
  assert.equal(failedAtProxy('http://proxy.lan:80', mirror, refused('10.0.0.5', 80)), false, 'a named proxy on the mirror\'s port: not proven');
  assert.equal(failedAtProxy('http://proxy.lan:3128', mirror, notFound('proxy.lan')), true);
  assert.equal(failedAtProxy('http://proxy.lan:3128', mirror, notFound('mirror.example')), false);
  assert.equal(failedAtProxy('http://proxy.lan', mirror, refused('10.0.0.5', 80)), false, 'default ports: both 80');
  assert.equal(failedAtProxy('http://proxy.lan', 'https://mirror.example/x', refused('10.0.0.5', 80)), true);
  assert.equal(failedAtProxy('http://127.0.0.1:9', mirror, new Error('socket hang up')), false, 'no address in the error');
  const both = new AggregateError([refused('127.0.0.1', 3128), refused('::1', 3128)], 'connect ECONNREFUSED');
  assert.equal(failedAtProxy('http://localhost:3128', mirror, Object.assign(both, { code: 'ECONNREFUSED' })), true, 'localhost: both its addresses');
  assert.equal(failedAtProxy('http://localhost:3128', mirror, { cause: both }), true);
  assert.equal(failedAtProxy('http://localhost:3128', mirror, new AggregateError([refused('127.0.0.1', 3128), refused('10.1.1.1', 80)])), false);
  const cyclic: { cause?: unknown } = {};
  cyclic.cause = { cause: cyclic };
  assert.equal(failedAtProxy('http://127.0.0.1:9', mirror, cyclic), false, 'a cycle of causes ends');
});

test('withoutPassword: never a password in a message, also one holding an @', () => {
  assert.equal(withoutPassword('http://user:p@ss@proxy:3128'), 'http://***@proxy:3128');
  assert.equal(withoutPassword('http://proxy:3128'), 'http://proxy:3128');
  assert.equal(withoutPassword('http://u:secret@proxy:3128/x@y'), 'http://***@proxy:3128/x@y');
});

test('proxyFor: https falls back to the http proxy, as undici\'s EnvHttpProxyAgent does', () => {
  assert.equal(proxyFor({ httpProxy: 'http://p:1' }, 'https://m/x'), 'http://p:1');
  assert.equal(proxyFor({ httpProxy: 'http://p:1', httpsProxy: 'http://q:2' }, 'https://m/x'), 'http://q:2');
  assert.equal(proxyFor({ httpsProxy: 'http://q:2' }, 'http://m/x'), undefined);
});
