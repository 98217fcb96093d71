// checkTemplate (src/engine/template-file.ts): a template up to HASH_HERE_MAX is hashed on the calling thread (start-up
// of a mount), a larger one on the pool; both accept the right file and name the wrong one.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HASH_HERE_MAX, checkTemplate } from '../../src/engine/template-file.js';
import { HashIndex } from '../../src/sources/hash-index.js';
import { identityOf } from '../../src/sources/file-identity.js';
import { WorkerPool } from '../../src/util/worker-pool.js';

const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-template-file-'));
const pool = new WorkerPool(1);
after(async () => {
  await pool.close();
  rmSync(work, { recursive: true, force: true });
});

for (const [label, size] of [['hashed here', 3 << 20], ['hashed on the pool', HASH_HERE_MAX + 1]] as const) {
  test(`a template ${label} (${size} bytes): the right MD5 or SHA-256 passes, a wrong one is named`, async () => {
    const data = randomBytes(size);
    const file = path.join(work, `t${size}.template`);
    writeFileSync(file, data);
    const image = { filename: 'x.iso', template: 't', templateMd5: createHash('md5').update(data).digest() };
    await checkTemplate(file, image, await HashIndex.load(undefined), pool);
    const sha = { filename: 'x.iso', template: 't', templateSha256: createHash('sha256').update(data).digest() };
    await checkTemplate(file, sha, await HashIndex.load(undefined), pool);
    const wrong = { filename: 'x.iso', template: 't', templateMd5: Buffer.alloc(16, 7) };
    await assert.rejects(checkTemplate(file, wrong, await HashIndex.load(undefined), pool), (err: Error) => {
      assert.match(err.message, /template MD5 checksum does not match the \.jigdo/);
      assert.ok(err.message.includes(file), err.message);
      return true;
    });
  });
}

test('the file checked is the one opened, whatever the name leads to by then (a template renamed into place meanwhile)', async () => {
  const right = randomBytes(4096);
  const other = randomBytes(4096); // another build's template
  const image = { filename: 'x.iso', template: 't', templateMd5: createHash('md5').update(right).digest() };
  const file = path.join(work, 'synced.template');
  for (const [openedBytes, laterBytes, ok] of [[other, right, false], [right, other, true]] as const) {
    writeFileSync(file, openedBytes);
    const fh = await open(file, 'r');
    try {
      writeFileSync(`${file}.new`, laterBytes);
      renameSync(`${file}.new`, file); // the sync renames the next one into place after the caller's open
      const opened = { identity: identityOf(await fh.stat()), fd: fh.fd };
      const checked = checkTemplate(file, image, await HashIndex.load(undefined), pool, opened);
      if (ok) await checked;
      else await assert.rejects(checked, /template MD5 checksum does not match the \.jigdo/);
    } finally {
      await fh.close();
    }
  }
});
