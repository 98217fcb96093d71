// `jigdofs serve`'s cap on open connections (src/http/server.ts): a few waiting connections per served client, never more
// than half the descriptors the process may open, never too few to serve.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectionCap } from '../../src/http/server.js';

test('the connection cap follows --max-clients and the open-file limit', () => {
  assert.equal(connectionCap(64, 20_000), 512);
  assert.equal(connectionCap(1, 20_000), 260);
  assert.equal(connectionCap(64, 1024), 512);
  assert.equal(connectionCap(1000, 1024), 512, 'half the descriptors at most');
  assert.equal(connectionCap(100_000, 1 << 20), 400_256);
  assert.equal(connectionCap(1, 20), 16, 'never fewer than 16');
  assert.ok(connectionCap(64) >= 16, 'the limit read from /proc/self/limits');
});
