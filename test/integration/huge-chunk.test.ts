/**
 * jigdo-file writes zlib chunks of up to ~270 MB for zero runs (spec §2.3). A random read in such a chunk
 * must cost at most one inflate pass of it: the chunk is inflated once into a sparse spill file.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadJigdo, openImage, selectImage } from '../../src/engine/session.js';
import { SPILL_THRESHOLD } from '../../src/sources/template-data.js';

const run = promisify(execFile);
const random = (n: number, seed: number): Buffer =>
  createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16)).update(Buffer.alloc(n));

let work: string;
let image: string;
const ZEROS = 100_000_000;
const HEAD = 70_000;
const PART = 300_000;

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-huge-'));
  await mkdir(path.join(work, 'p'));
  const part = random(PART, 1);
  await writeFile(path.join(work, 'p', 'part.bin'), part);
  image = path.join(work, 'img.bin');
  const fh = await open(image, 'w');
  await fh.write(random(HEAD, 2));
  await fh.write(part);
  await fh.truncate(HEAD + PART + ZEROS); // the zero run, sparse
  await fh.write(random(2_000_000, 3), 0, 2_000_000, HEAD + PART + ZEROS);
  await fh.close();
  await run('jigdo-file', ['make-template', '-r', 'quiet', '--force', '--no-cache', `--image=${image}`, `--jigdo=${work}/x.jigdo`, `--template=${work}/x.template`, `${work}/p//`], { cwd: work });
});

after(() => rm(work, { recursive: true, force: true }));

test('random reads in a 100 MB zlib chunk inflate it once, into a sparse spill file', async () => {
  const j = await loadJigdo(path.join(work, 'x.jigdo'));
  const cacheDir = path.join(work, 'cache');
  const s = await openImage(j, selectImage(j), { local: [], scan: [path.join(work, 'p')], cacheDir, memory: 32 << 20, log: () => undefined });
  try {
    const huge = s.template.chunks.find((c) => c.uncompressedLength > SPILL_THRESHOLD);
    assert.ok(huge, `jigdo-file made a chunk above ${SPILL_THRESHOLD} bytes`);
    const original = await open(image, 'r');
    const starts = [HEAD + PART + ZEROS - 10, HEAD + PART + 5, HEAD + PART + 50_000_000, HEAD + PART + ZEROS - 4096, 12345];
    for (const at of starts) {
      const want = Buffer.alloc(8192);
      await original.read(want, 0, 8192, at);
      assert.ok((await s.reader.read(at, 8192)).equals(want), `bytes at ${at}`);
    }
    await original.close();
    const inflatedOnce = s.raw.stats.bytesInflated;
    assert.ok(inflatedOnce <= huge.uncompressedLength + 4_000_000, `inflated ${inflatedOnce} bytes for reads in one chunk`);
    for (let i = 0; i < 20; i++) await s.reader.read(HEAD + PART + Math.floor(Math.random() * ZEROS), 4096);
    assert.equal(s.raw.stats.bytesInflated, inflatedOnce, 'later random reads inflate nothing');
    const spillDir = path.join(cacheDir, 'inflated');
    const [id] = await readdir(spillDir);
    // Named once synced and counted, a moment after its last byte was read.
    let files = await readdir(path.join(spillDir, id!));
    for (let i = 0; i < 100 && files.every((f) => f.endsWith('.tmp')); i++) {
      await new Promise((r) => setTimeout(r, 50));
      files = await readdir(path.join(spillDir, id!));
    }
    const spill = files.find((f) => !f.endsWith('.tmp'));
    assert.ok(spill, `a finished spill file in ${files.join(', ')}`);
    const st = await stat(path.join(spillDir, id!, spill));
    assert.equal(st.size, huge.uncompressedLength);
    assert.ok(st.blocks * 512 < 8 << 20, `zero runs take no disk (${st.blocks * 512} bytes allocated)`);
  } finally {
    await s.close();
  }
  // A new session (a new mount) reuses the finished spill file: nothing to inflate.
  const again = await openImage(j, selectImage(j), { local: [], scan: [path.join(work, 'p')], cacheDir, memory: 32 << 20, log: () => undefined });
  try {
    await again.reader.read(HEAD + PART + 60_000_000, 4096);
    assert.equal(again.raw.stats.bytesInflated, 0);
  } finally {
    await again.close();
  }
});

test("a killed process's half-made spill file is removed by the next session; a full disk is named as such", async () => {
  const j = await loadJigdo(path.join(work, 'x.jigdo'));
  const options = (cacheDir: string) => ({ local: [], scan: [path.join(work, 'p')], cacheDir, memory: 32 << 20, log: () => undefined });
  const cacheDir = path.join(work, 'cache-dead');
  // Where the spill files of this template go: learn it from a first session, then plant a leftover.
  const first = await openImage(j, selectImage(j), options(cacheDir));
  await first.reader.read(HEAD + PART + ZEROS - 10, 4096); // the end of the chunk: the spill file is finished
  await first.close();
  const [id] = await readdir(path.join(cacheDir, 'inflated'));
  const dir = path.join(cacheDir, 'inflated', id!);
  const dead = path.join(dir, 'chunk-9-123456.4194305.1700000000000.tmp'); // pid above pid_max: never alive
  const mine = path.join(dir, `chunk-9-123456.${process.pid}.1700000000000.tmp`);
  await writeFile(dead, 'left by a killed process');
  await writeFile(mine, 'a live process is working on it');
  await rm(path.join(dir, (await readdir(dir)).find((f) => !f.endsWith('.tmp'))!)); // so that the chunk is spilled again
  const second = await openImage(j, selectImage(j), options(cacheDir));
  try {
    await second.reader.read(HEAD + PART + ZEROS - 10, 4096);
  } finally {
    await second.close();
  }
  const left = await readdir(dir);
  assert.ok(!left.includes(path.basename(dead)), `removed: ${left.join(', ')}`);
  assert.ok(left.includes(path.basename(mine)), 'a live process keeps its file');

  // A cache on a file system too small for the chunk's non-zero blocks: an error naming the spill file.
  const small = path.join(work, 'small');
  await mkdir(small);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', small]);
  try {
    const s = await openImage(j, selectImage(j), options(small));
    try {
      await assert.rejects(s.reader.read(HEAD + PART + ZEROS - 10, 8192), (err: Error) => {
        assert.match(err.message, /inflated\/.*\.tmp: cannot write the inflated template data: ENOSPC/);
        return true;
      });
    } finally {
      await s.close();
    }
    const spills = await readdir(path.join(small, 'inflated', id!)).catch(() => [] as string[]);
    assert.deepEqual(spills, [], 'no half-written spill file left');
  } finally {
    await run('umount', ['-l', small]);
  }
});

test('a process that ends while it spills a chunk (an unmount, a fatal error) leaves no half-made spill file', async () => {
  const cacheDir = path.join(work, 'cache-exit');
  const session = new URL('../../src/engine/session.ts', import.meta.url).href;
  const script = `
    import { readdirSync } from 'node:fs';
    const { loadJigdo, openImage, selectImage } = await import(${JSON.stringify(session)});
    const j = await loadJigdo(${JSON.stringify(path.join(work, 'x.jigdo'))});
    const s = await openImage(j, selectImage(j), { local: [], scan: [${JSON.stringify(path.join(work, 'p'))}], cacheDir: ${JSON.stringify(cacheDir)}, memory: 32 << 20, log: () => undefined });
    void s.reader.read(${HEAD + PART + ZEROS - 10}, 4096).catch(() => undefined);
    const tmp = () => { try { const [id] = readdirSync(${JSON.stringify(path.join(cacheDir, 'inflated'))}); return readdirSync(${JSON.stringify(path.join(cacheDir, 'inflated'))} + '/' + id).filter((f) => f.endsWith('.tmp')); } catch { return []; } };
    while (tmp().length === 0) await new Promise((r) => setTimeout(r, 1));
    process.exit(0);`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const [id] = await readdir(path.join(cacheDir, 'inflated'));
  assert.deepEqual((await readdir(path.join(cacheDir, 'inflated', id!))).filter((f) => f.endsWith('.tmp')), [], 'its .tmp is gone (on the old code it stayed)');
});

test('a spill file written to since it was named, or a FIFO in its place, is not used: the chunk is inflated again', async () => {
  const j = await loadJigdo(path.join(work, 'x.jigdo'));
  const cacheDir = path.join(work, 'cache-damaged');
  const open_ = () => openImage(j, selectImage(j), { local: [], scan: [path.join(work, 'p')], cacheDir, memory: 32 << 20, log: () => undefined });
  const at = HEAD + PART + 1_000_000; // inside the zero run, in the spilled chunk
  const first = await open_();
  await first.reader.read(HEAD + PART + ZEROS - 10, 4096); // the whole chunk: its spill is finished
  await first.close();
  // The image's bytes after the part are the raw stream's after HEAD; the spill holds its chunk's share of that stream.
  const huge = first.template.chunks.find((c) => c.uncompressedLength > SPILL_THRESHOLD)!;
  const inSpill = at - PART - huge.rawStart;
  const [id] = await readdir(path.join(cacheDir, 'inflated'));
  const dir = path.join(cacheDir, 'inflated', id!);
  const spill = path.join(dir, (await readdir(dir)).find((f) => !f.endsWith('.tmp'))!);

  // Written to in place, as `dd conv=notrunc` would: its size stays, its mtime gets a fraction of a second.
  const fh = await open(spill, 'r+');
  await fh.write(Buffer.from('CORRUPTED'), 0, 9, inSpill);
  await fh.close();
  const second = await open_();
  try {
    assert.ok((await second.reader.read(at, 4096)).equals(Buffer.alloc(4096)), 'the zeros, not the bytes written into the spill file');
    assert.ok(second.raw.stats.bytesInflated > 0, 'inflated again');
  } finally {
    await second.close();
  }

  // A FIFO in its place: the open waited for a writer for good.
  await rm(spill, { force: true });
  await run('mkfifo', [spill]);
  const third = await open_();
  try {
    const read = third.reader.read(at, 4096);
    const hung = new Promise((_, reject) => setTimeout(() => reject(new Error('the read waited on the FIFO')), 20_000).unref());
    assert.ok(((await Promise.race([read, hung])) as Buffer).equals(Buffer.alloc(4096)));
  } finally {
    await third.close();
  }
});
