/**
 * Issue 7 item 6: a local part edited in place with its size kept and its mtime put back (`touch -r`, tools
 * that keep mtimes) is never served or built into an image, and a hash index that still lies (a file
 * system with coarse timestamps) makes make-image name the part and the file, not fail the same way forever.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { checksumKey } from '../../src/format/checksum.js';
import { describeRun, runCli } from '../helpers/cli.js';
import { buildFixtures, type FixtureVariant } from '../helpers/fixtures.js';
import { mountJigdo } from '../helpers/mount.js';
import { fileMd5, missingPartLines, sleep } from '../helpers/network.js';
import { indexFiles } from '../helpers/hash-index-file.js';

const run = promisify(execFile);
/** The part edited: 3 MB, so that a region of it far from what was read first is not in any cache. */
const PART = 'pool/e-3m.bin';
/** Where in the part the edit goes, and how long it is. */
const EDIT_AT = 2_000_000;
const EDIT_LEN = 4096;
/** PartStore re-checks an open copy at most this often (RECHECK_MS in src/sources/parts.ts) plus a margin. */
const RECHECK_WAIT_MS = 1200;

let v: FixtureVariant;
let work: string;
let original: Buffer;
let partKey: string;
/** Where the part starts in the image. */
let partOffset: number;
let dirs = 0;

before(async () => {
  const fx = await buildFixtures();
  v = fx.variants['jf-md5-gzip'];
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-stale-'));
  original = await readFile(path.join(v.partsDir, PART));
  partKey = checksumKey(createHash('md5').update(original).digest());
  partOffset = (await readFile(v.image)).indexOf(original.subarray(0, 4096));
  assert.ok(partOffset > 0, 'the part is in the image');
});

after(() => rm(work, { recursive: true, force: true }));

/** A private copy of the fixture's parts tree (it is shared and read-only). */
async function copyOfParts(): Promise<string> {
  const dir = path.join(work, `${++dirs}-parts`);
  await cp(v.partsDir, dir, { recursive: true });
  return dir;
}

/** Changes EDIT_LEN bytes inside the part's file, keeping its size and putting its mtime back exactly (ns). */
async function editKeepingMtime(file: string): Promise<void> {
  const ref = `${file}.ref`;
  await run('touch', ['-r', file, ref]);
  const fh = await open(file, 'r+');
  await fh.write(Buffer.alloc(EDIT_LEN, 'X'), 0, EDIT_LEN, EDIT_AT);
  await fh.close();
  await run('touch', ['-r', ref, file]);
  await rm(ref);
  const [a, b] = await Promise.all([stat(file, { bigint: true }), stat(path.join(v.partsDir, PART), { bigint: true })]);
  assert.equal(a.size, b.size);
}

/** Reads `length` bytes of the mounted image at `at`: the bytes, or the error (EIO expected). */
async function readMounted(file: string, at: number, length: number): Promise<Buffer | Error> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, at);
    return buf.subarray(0, bytesRead);
  } catch (err) {
    return err as Error;
  } finally {
    await fh.close();
  }
}

/** The edited region read through a mount: EIO or the part's true bytes, never the edited ones. */
function assertNotEdited(got: Buffer | Error): void {
  if (got instanceof Error) {
    assert.match(got.message, /EIO/);
    return;
  }
  assert.ok(got.equals(original.subarray(EDIT_AT, EDIT_AT + EDIT_LEN)), `served ${got.subarray(0, 16).toString('latin1')}... instead of the verified bytes`);
}

/** Mounts a private copy of the parts, reads the start of the part (so its copy is verified and open), then edits it. */
async function mountThenEdit(): Promise<{ m: Awaited<ReturnType<typeof mountJigdo>>; image: string; parts: string }> {
  const parts = await copyOfParts();
  const m = await mountJigdo(v.jigdo, ['--offline', '--scan', parts]);
  try {
    const [name] = await readdir(m.mnt);
    const image = m.file(name!);
    const first = await readMounted(image, partOffset, 65536);
    assert.ok(Buffer.isBuffer(first) && first.equals(original.subarray(0, 65536)), 'the part is served before the edit');
    await editKeepingMtime(path.join(parts, PART));
    return { m, image, parts };
  } catch (err) {
    await m.cleanup();
    throw err;
  }
}

describe('a mount never serves a local part changed in place under touch -r', () => {
  test('an edit is not served even by the very next read (no wait for the periodic re-check)', async () => {
    const { m, image } = await mountThenEdit();
    try {
      assertNotEdited(await readMounted(image, partOffset + EDIT_AT, EDIT_LEN));
    } finally {
      await m.cleanup();
    }
  });

  test('an edit, then the file removed while the mount still has it open: not served either', async () => {
    const { m, image, parts } = await mountThenEdit();
    try {
      await rm(path.join(parts, PART)); // its unlink moves the ctime again: the edit's only trace must not be excused
      assertNotEdited(await readMounted(image, partOffset + EDIT_AT, EDIT_LEN));
    } finally {
      await m.cleanup();
    }
  });

  test('while mounted: the copy it verified and opened changes', async () => {
    const { m, image } = await mountThenEdit();
    try {
      await sleep(RECHECK_WAIT_MS); // past the periodic re-check too (a user file is also checked after every read)
      assertNotEdited(await readMounted(image, partOffset + EDIT_AT, EDIT_LEN));
      const status = (await m.status()) as { images: Array<{ parts: { missing: number }; recentErrors: string[] }> };
      const img = status.images[0]!;
      assert.equal(img.parts.missing, 1, `status: ${JSON.stringify(img)}`);
      assert.ok(img.recentErrors.some((e) => e.includes(partKey)), `status names the part: ${JSON.stringify(img.recentErrors)}`);
    } finally {
      await m.cleanup();
    }
  });

  test('a later mount with the same --cache-dir does not trust the hash index', async () => {
    const parts = await copyOfParts();
    const cacheDir = path.join(work, `${++dirs}-cache`);
    const first = await mountJigdo(v.jigdo, ['--offline', '--scan', parts], { cacheDir });
    try {
      const [name] = await readdir(first.mnt);
      assert.ok(Buffer.isBuffer(await readMounted(first.file(name!), partOffset, 4096)));
    } finally {
      await first.cleanup(); // umount saves the hash index, with the part's file in it
    }
    await editKeepingMtime(path.join(parts, PART));
    const second = await mountJigdo(v.jigdo, ['--offline', '--scan', parts], { cacheDir });
    try {
      const [name] = await readdir(second.mnt);
      assertNotEdited(await readMounted(second.file(name!), partOffset + EDIT_AT, EDIT_LEN));
      const status = (await second.status()) as { images: Array<{ parts: { missing: number; verified: number } }> };
      assert.equal(status.images[0]!.parts.missing, 1, JSON.stringify(status.images[0]));
    } finally {
      await second.cleanup();
    }
  });
});

describe('make-image after a local part changed under touch -r', () => {
  test('the rerun names the part and the file, and succeeds once another source has the part', async () => {
    const parts = await copyOfParts();
    const d = path.join(work, `${++dirs}-make`);
    const cache = path.join(d, 'cache');
    const out = path.join(d, 'out.iso');
    const good = path.join(d, 'good');
    await mkdir(good, { recursive: true });
    await writeFile(path.join(good, 'e-3m.bin'), original);
    const make = (...scan: string[]) => runCli(['make-image', v.jigdo, '-o', out, '--cache-dir', cache, '--offline', ...scan.flatMap((s) => ['--scan', s])], { timeoutMs: 30_000 });

    const r1 = await make(parts);
    assert.equal(r1.code, 0, describeRun(r1));
    await rm(out);
    await editKeepingMtime(path.join(parts, PART));

    const r2 = await make(parts);
    assert.equal(r2.code, 1, describeRun(r2));
    const lines = missingPartLines(r2.stderr);
    assert.equal(lines.length, 1, describeRun(r2));
    assert.ok(lines[0]!.includes(partKey) && lines[0]!.includes(path.join(parts, PART)), `names the part and the file:\n${describeRun(r2)}`);
    assert.deepEqual((await readdir(d)).filter((f) => f.startsWith('out.iso')), [], 'no image, no temporary file');

    const r3 = await make(parts, good);
    assert.equal(r3.code, 0, describeRun(r3));
    assert.equal(await fileMd5(out), v.imageMd5);
  });

  /** Writes a hash index that says the edited file still holds the part (what a coarse-ctime file system allows). */
  async function lyingIndex(cache: string, file: string): Promise<void> {
    const st = await stat(file);
    const entry = { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev, sums: { md5: partKey } };
    await mkdir(cache, { recursive: true });
    await writeFile(path.join(cache, 'hash-index.jsonl'), `{"version":3}\n${JSON.stringify([file, entry])}\n`);
  }

  test('a wrong image makes it hash the parts again, name the bad file, and rebuild from a good copy', async () => {
    const parts = await copyOfParts();
    const d = path.join(work, `${++dirs}-lying`);
    const cache = path.join(d, 'cache');
    const out = path.join(d, 'out.iso');
    const good = path.join(d, 'good');
    await mkdir(good, { recursive: true });
    await writeFile(path.join(good, 'e-3m.bin'), original);
    const bad = path.join(parts, PART);
    await editKeepingMtime(bad);
    await lyingIndex(cache, bad);

    const r = await runCli(['make-image', v.jigdo, '-o', out, '--cache-dir', cache, '--offline', '--scan', parts, '--scan', good], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, describeRun(r));
    assert.equal(await fileMd5(out), v.imageMd5);
    assert.ok(
      r.stderr.split('\n').some((l) => l.startsWith(`jigdofs: ${bad}: `) && l.includes(partKey)),
      `a line names the bad file and the part:\n${describeRun(r)}`,
    );
    const files = await indexFiles(path.join(cache, 'hash-index.jsonl'));
    assert.notEqual(files[bad]?.sums.md5, partKey, 'the lie is gone from the index');
  });

  test('with no other copy it fails naming the part and the file, and leaves no image behind', async () => {
    const parts = await copyOfParts();
    const d = path.join(work, `${++dirs}-lying-alone`);
    const cache = path.join(d, 'cache');
    const out = path.join(d, 'out.iso');
    const bad = path.join(parts, PART);
    await editKeepingMtime(bad);
    await lyingIndex(cache, bad);

    const r = await runCli(['make-image', v.jigdo, '-o', out, '--cache-dir', cache, '--offline', '--scan', parts], { timeoutMs: 30_000 });
    assert.equal(r.code, 1, describeRun(r));
    const lines = missingPartLines(r.stderr);
    assert.equal(lines.length, 1, describeRun(r));
    assert.ok(lines[0]!.includes(partKey) && lines[0]!.includes(bad), `the missing part's line names the file:\n${describeRun(r)}`);
    assert.deepEqual((await readdir(d)).filter((f) => f.startsWith('out.iso')), [], 'no image, no temporary file');
  });
});
