// `mkdir -p` of the cache's folders (src/util/make-dirs.ts): made private, existing ones kept, a file in the way named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeDirs } from '../../src/util/make-dirs.js';

test('makes the whole path (0700), keeps what exists, and names a file in the way', async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-make-dirs-'));
  try {
    const deep = path.join(work, 'a', 'b', 'c');
    await makeDirs(deep);
    assert.equal(statSync(deep).mode & 0o777, 0o700);
    await makeDirs(deep); // there already
    const blocked = path.join(work, 'parts', 'tmp');
    await makeDirs(path.dirname(blocked));
    writeFileSync(blocked, 'junk');
    await assert.rejects(makeDirs(blocked), { message: `${blocked}: not a folder (a file is in the way: remove or rename it)` });
    await assert.rejects(makeDirs(path.join(blocked, 'x')), /not a folder|ENOTDIR/);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
