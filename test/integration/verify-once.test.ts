/**
 * Verify once (issue 11 item 2): make-image takes the copies the .jigdo names (--local) without hashing them
 * first, since the image checksum checks every byte; a wrong image has every part hashed, the bad copy named
 * and replaced. A mount still hashes a part before serving it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findMissing, makeImage } from '../../src/build/make-image.js';
import { loadJigdo, openImage, selectImage, type SourceOptions } from '../../src/engine/session.js';
import { assertCleanFailure, REPO, runCli } from '../helpers/cli.js';
import { md5hex as md5 } from '../helpers/hash.js';

const S = path.join(REPO, 'test', 'fixtures', 'samples');
const JIGDO = path.join(S, 'jf-md5-gzip.jigdo');
const IMAGE_MD5 = '784af77770a40eb11678baaea6484bff';
/** Parts named by the .jigdo (Parts:a.bin, Parts:sub/b-copy.bin, Parts:sub/c.bin). */
const NAMED = 3;
let work: string;
let n = 0;

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-verify-once-'));
});
after(() => rm(work, { recursive: true, force: true }));

async function session(extra: Partial<SourceOptions>, logs: string[] = []) {
  const j = await loadJigdo(JIGDO);
  return openImage(j, selectImage(j), { local: [], scan: [], cacheDir: path.join(work, 'cache'), memory: 32 << 20, log: (l) => logs.push(l), ...extra });
}

/** A private copy of the sample parts (tests edit them). */
async function partsCopy(): Promise<string> {
  const dir = path.join(work, `parts-${++n}`);
  await cp(path.join(S, 'parts'), dir, { recursive: true });
  return dir;
}

test('make-image hashes no named local copy before use when the image checksum matches, then records them', async () => {
  const parts = await partsCopy();
  const cacheDir = path.join(work, `cache-${++n}`);
  const out = path.join(work, `ok-${n}.iso`);
  const s = await session({ local: [{ label: 'Parts', dir: parts }], cacheDir });
  try {
    const r = await makeImage(s, out);
    assert.deepEqual(r.missing, []);
    assert.equal(s.local.stats.hashed, 0, 'no part hashed: the image checksum checked their bytes');
  } finally {
    await s.close();
  }
  assert.equal(md5(await readFile(out)), IMAGE_MD5);
  // Recorded in the hash index once the image matched: a later job (a mount, `missing`) hashes nothing either.
  const again = await session({ local: [{ label: 'Parts', dir: parts }], cacheDir });
  try {
    assert.deepEqual(await findMissing(again), []);
    assert.equal(again.local.stats.hashed, 0);
  } finally {
    await again.close();
  }
});

test('a named copy with the right size and wrong bytes: the wrong image has every part hashed, the file named, a good copy used', async () => {
  const parts = await partsCopy();
  const bad = path.join(parts, 'sub', 'c.bin');
  const good = path.join(work, `good-${++n}`);
  await cp(path.join(S, 'parts', 'sub'), good, { recursive: true });
  await writeFile(bad, Buffer.alloc((await stat(bad)).size, 0x55));
  const out = path.join(work, `repaired-${n}.iso`);
  const logs: string[] = [];
  const s = await session({ local: [{ label: 'Parts', dir: parts }], scan: [good], cacheDir: path.join(work, `cache-${n}`) }, logs);
  try {
    const r = await makeImage(s, out);
    assert.deepEqual(r.missing, []);
    assert.ok(s.local.stats.hashed >= 1, 'the good copy was hashed before use');
  } finally {
    await s.close();
  }
  assert.equal(md5(await readFile(out)), IMAGE_MD5);
  assert.ok(
    logs.some((l) => l.includes(bad) && l.includes('T_xAhGd5OOFDZW1sYi26Eg')),
    `a line names the bad file and its part:\n${logs.join('\n')}`,
  );
});

test('a named copy taken unhashed whose read then failed is not recorded as the part when the image matches', async () => {
  const parts = await partsCopy();
  const bad = path.join(parts, 'sub', 'c.bin');
  const key = 'T_xAhGd5OOFDZW1sYi26Eg';
  await writeFile(bad, Buffer.alloc((await stat(bad)).size, 0x55)); // wrong bytes, right size
  // Good copies of every part: the folder may go away before another named part (a.bin) was read, so that one too
  // must have a copy to come from (the order of the reads is not fixed).
  const good = path.join(work, `good-${++n}`);
  await cp(path.join(S, 'parts'), good, { recursive: true });
  const cacheDir = path.join(work, `cache-${n}`);
  const s = await session({ local: [{ label: 'Parts', dir: parts }], scan: [good], cacheDir });
  // The folder goes away (unmounted, moved) once the copy is taken and before it is read: the part then comes from the
  // scanned copy, hashed, and the image matches. The copy never read was recorded as holding the part.
  const find = s.local.findNamed.bind(s.local);
  s.local.findNamed = async (k) => {
    const copy = await find(k);
    if (copy?.path === bad) await rename(parts, `${parts}.away`);
    return copy;
  };
  try {
    const r = await makeImage(s, path.join(work, `moved-${n}.iso`));
    assert.deepEqual(r.missing, []);
  } finally {
    await s.close();
  }
  assert.equal(md5(await readFile(path.join(work, `moved-${n}.iso`))), IMAGE_MD5);
  await rename(`${parts}.away`, parts);
  const again = await session({ local: [{ label: 'Parts', dir: parts }], cacheDir });
  try {
    assert.deepEqual(await findMissing(again), [key], 'the wrong file is hashed, not taken from the index');
  } finally {
    await again.close();
  }
});

/** Whether a folder can be made immutable here (root with CAP_LINUX_IMMUTABLE, a file system with the attribute). */
function immutableFolders(): boolean {
  const probe = mkdtempSync(path.join(tmpdir(), 'jigdofs-chattr-'));
  try {
    execFileSync('chattr', ['+i', probe], { stdio: 'ignore' });
    execFileSync('chattr', ['-i', probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

test('an output folder made immutable mid-run: the rename failure is reported, and the temporary image named as left', { skip: !immutableFolders() && 'needs chattr +i (root, CAP_LINUX_IMMUTABLE)' }, async () => {
  const parts = await partsCopy();
  const outDir = path.join(work, `frozen-${++n}`);
  await mkdir(outDir);
  const s = await session({ local: [{ label: 'Parts', dir: parts }], cacheDir: path.join(work, `cache-${n}`) });
  let frozen = false;
  try {
    const made = makeImage(s, path.join(outDir, 'img.iso'), () => {
      if (frozen) return;
      frozen = true;
      execFileSync('chattr', ['+i', outDir]); // while the image is written: its rename and the cleanup then fail
    });
    await assert.rejects(made, (err: Error) => {
      assert.match(err.message, /img\.iso: cannot write: EPERM.*; its temporary file .*img\.iso\.jigdofs-.*\.tmp is left \(EPERM\): remove it by hand$/);
      return true;
    });
  } finally {
    if (frozen) execFileSync('chattr', ['-i', outDir]);
    await s.close();
  }
});

test('with no good copy the wrong named file is reported missing, and nothing is written', async () => {
  const parts = await partsCopy();
  const bad = path.join(parts, 'a.bin');
  await writeFile(bad, Buffer.alloc((await stat(bad)).size, 0x55));
  const out = path.join(work, `none-${++n}.iso`);
  const s = await session({ local: [{ label: 'Parts', dir: parts }], cacheDir: path.join(work, `cache-${n}`) });
  try {
    const r = await makeImage(s, out);
    assert.deepEqual(r.missing, ['P6D_Q1IkDFd5tl9ZIOws9A']);
    assert.ok(s.parts.missingReason('P6D_Q1IkDFd5tl9ZIOws9A')?.includes(bad), s.parts.missingReason('P6D_Q1IkDFd5tl9ZIOws9A'));
  } finally {
    await s.close();
  }
  await assert.rejects(stat(out), { code: 'ENOENT' });
});

test('a mount-style read (no deferral) hashes a named copy before serving any byte of it', async () => {
  const parts = await partsCopy();
  const s = await session({ local: [{ label: 'Parts', dir: parts }], cacheDir: path.join(work, `cache-${++n}`) });
  try {
    const need = s.layout.parts.get('P6D_Q1IkDFd5tl9ZIOws9A')!;
    await s.reader.read(need.offsets[0]!, 1);
    assert.equal(s.local.stats.hashed, 1);
    assert.deepEqual(await findMissing(s), []);
    assert.equal(s.local.stats.hashed, NAMED);
  } finally {
    await s.close();
  }
});

test("an image checksum no part is to blame for (a template's own checksum edited): one line that names the template", async () => {
  const dir = path.join(work, `edited-${++n}`);
  await cp(S, dir, { recursive: true });
  const template = path.join(dir, 'jf-md5-gzip.template');
  const bytes = await readFile(template);
  const at = bytes.lastIndexOf(Buffer.from(IMAGE_MD5, 'hex'));
  assert.ok(at > 0, 'the image MD5 is in the template');
  bytes[at] = bytes[at]! ^ 1;
  await writeFile(template, bytes);
  const jigdo = path.join(dir, 'jf-md5-gzip.jigdo');
  await writeFile(jigdo, (await readFile(jigdo, 'utf8')).replace(/^Template-MD5Sum=.*\n/m, '')); // else the template's own sum refuses it first
  const out = path.join(work, `edited-${n}.iso`);
  const r = await runCli(['make-image', jigdo, '--scan', path.join(dir, 'parts'), '-o', out, '--cache-dir', path.join(work, `cache-${n}`)]);
  assertCleanFailure(r, out, new RegExp(`every part was hashed again and is right, so ${template.replace(/[.]/g, '\\.')} does not describe this image`));
  await assert.rejects(stat(out), { code: 'ENOENT' });
});
