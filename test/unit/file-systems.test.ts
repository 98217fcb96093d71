// Which file systems make-image sizes its temporary image on before writing it (util/file-systems.ts): only
// those that grow a file without writing, never one it cannot identify.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { holdsSparseFiles, hasFastMetadata } from '../../src/util/file-systems.js';

test('tmpfs holds sparse files', { skip: !existsSync('/dev/shm') && 'no /dev/shm here' }, async () => {
  assert.equal(await holdsSparseFiles('/dev/shm'), true);
});

test('a file system not known to (procfs) and a path that does not exist do not', async () => {
  assert.equal(await holdsSparseFiles('/proc/self/status'), false);
  assert.equal(await holdsSparseFiles('/nonexistent/jigdofs/sparse-probe'), false);
});

test('hasFastMetadata: a folder not made yet is judged by its nearest ancestor', { skip: !existsSync('/dev/shm') && 'no /dev/shm here' }, async () => {
  assert.equal(await hasFastMetadata('/dev/shm/jigdofs-not-made/cache'), true);
  assert.equal(await hasFastMetadata('/proc/self/jigdofs-not-made'), false);
});
