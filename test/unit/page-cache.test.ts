// Dropping files from the kernel's page cache (util/page-cache.ts: posix_fadvise DONTNEED through WASI's fd_advise),
// on this thread and through the worker pool. Residency is measured by util-linux's `fincore` (mincore(2)), not by
// our code.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, statSync, symlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dropFromPageCache } from '../../src/util/page-cache.js';
import { WorkerPool } from '../../src/util/worker-pool.js';

const TMPFS_MAGIC = 0x01021994;
// tmpfs keeps its pages whatever one advises (they are the file): use a folder on a disk's file system then.
const base = statfsSync(tmpdir()).type === TMPFS_MAGIC ? '/var/tmp' : tmpdir();
const work = mkdtempSync(path.join(base, 'jigdofs-page-cache-'));
after(() => rmSync(work, { recursive: true, force: true }));

const SIZE = 8 << 20;

/** Bytes of the file in the page cache, by util-linux's fincore. */
function resident(file: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' }).trim());
}

/**
 * A new file of SIZE random bytes, on the disk (synced, so its pages are clean) and all in the page cache. `chunk`:
 * written that much at a time (the page cache's folios are no larger than the writes that made them).
 */
function cachedFile(name: string, chunk = SIZE): string {
  const file = path.join(work, name);
  const fd = openSync(file, 'w');
  try {
    for (let at = 0; at < SIZE; at += chunk) writeSync(fd, randomBytes(chunk), 0, chunk, at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  readFileSync(file);
  assert.equal(resident(file), SIZE, 'the file is in the page cache before the drop');
  return file;
}

test('a file synced and read leaves the page cache, its bytes intact', () => {
  const file = cachedFile('plain.bin');
  const before = readFileSync(file);
  assert.equal(dropFromPageCache(file), true);
  assert.equal(resident(file), 0);
  assert.ok(readFileSync(file).equals(before));
});

// Written 64 KiB at a time, and ranges at 2 MiB boundaries: only folios wholly inside a range are dropped, and the
// page cache holds a file in folios as large as the writes that made them (2 MiB for one 8 MiB write here: ext4,
// Linux 6.18), or larger elsewhere.
test('a range: only what lies wholly inside it leaves the page cache, on this thread and through the pool', async () => {
  const file = cachedFile('range.bin', 64 << 10);
  assert.equal(dropFromPageCache(file, { offset: 2 << 20, length: 4 << 20 }), true);
  assert.equal(resident(file), SIZE - (4 << 20));
  const pool = new WorkerPool(1);
  try {
    await pool.dropPages([file], { offset: 0, length: (2 << 20) + 4096 }); // the page at its end is already gone
  } finally {
    await pool.close();
  }
  assert.equal(resident(file), SIZE - (6 << 20));
});

// A mount's drops name the mount's device: after a lazy detach, the image's path may be another mount's file.
test('with a device: only a file on that device is dropped, on this thread and through the pool', async () => {
  const file = cachedFile('device.bin');
  const { dev } = statSync(file);
  assert.equal(dropFromPageCache(file, undefined, dev + 1), false);
  assert.equal(resident(file), SIZE, 'a file on another device keeps its pages');
  const pool = new WorkerPool(1);
  try {
    await pool.dropPages([file], { offset: 0, length: SIZE }, dev + 1);
    assert.equal(resident(file), SIZE, 'through the pool too');
    await pool.dropPages([file], { offset: 0, length: SIZE }, dev);
  } finally {
    await pool.close();
  }
  assert.equal(resident(file), 0);
});

test('through a folder reached by a symbolic link, and with a name WASI paths must carry as given', () => {
  mkdirSync(path.join(work, 'real dir'));
  symlinkSync(path.join(work, 'real dir'), path.join(work, 'link'));
  cachedFile(path.join('real dir', 'ünïcode name.bin'));
  const viaLink = path.join(work, 'link', 'ünïcode name.bin');
  assert.equal(dropFromPageCache(viaLink), true);
  assert.equal(resident(viaLink), 0);
});

test('a file that does not exist, or a relative path, is no error: false', () => {
  assert.equal(dropFromPageCache(path.join(work, 'nothing-here.bin')), false);
  assert.equal(dropFromPageCache(path.relative(process.cwd(), cachedFile('relative.bin'))), false);
  assert.equal(dropFromPageCache(path.join(work, 'x'.repeat(70_000))), false); // longer than the module's memory
});

test('WorkerPool.dropPages drops on a worker thread, and never fails', async () => {
  const files = [cachedFile('w1.bin'), cachedFile('w2.bin')];
  const pool = new WorkerPool(1);
  try {
    await pool.dropPages([...files, path.join(work, 'missing.bin')]);
  } finally {
    await pool.close();
  }
  for (const f of files) assert.equal(resident(f), 0, f);
});

test('a FIFO where a file was expected does not hang the dropping thread', { timeout: 10_000 }, () => {
  const fifo = path.join(work, 'fifo');
  execFileSync('mkfifo', [fifo]);
  assert.equal(typeof dropFromPageCache(fifo), 'boolean'); // (returns: opened without blocking, nothing to drop)
});
