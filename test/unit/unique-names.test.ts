import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueNames } from '../../src/util/unique-names.js';

test('a name taken already gets a number before its extension; names that are unique stay as they are', () => {
  assert.deepEqual(uniqueNames(['a.iso', 'b.iso']), ['a.iso', 'b.iso']);
  assert.deepEqual(uniqueNames(['a.iso', 'a.iso', 'a.iso']), ['a.iso', 'a-2.iso', 'a-3.iso']);
  assert.deepEqual(uniqueNames(['disc', 'disc']), ['disc', 'disc-2']);
  assert.deepEqual(uniqueNames(['a.iso', 'a-2.iso', 'a.iso']), ['a.iso', 'a-2.iso', 'a-3.iso'], 'past a name given as such');
  assert.deepEqual(uniqueNames(['x.tar.gz', 'x.tar.gz']), ['x.tar.gz', 'x.tar-2.gz']);
});
