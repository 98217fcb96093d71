// The mount's read-ahead window (src/fuse/kernel-read-ahead.ts): where the kernel keeps it for a device, how it is
// read (again at most once a second), and how far out of order it lets a stream's reads come (ImageReader).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DROP_KEEP_BEHIND } from '../../src/fuse/drop-behind.js';
import { DEFAULT_READ_AHEAD, WINDOW_READ, kernelReadAhead, readAheadFile, reorderWindow } from '../../src/fuse/kernel-read-ahead.js';

const KiB = 1024;

test('the read-ahead file is named by the device as major:minor (glibc encoding), also for large minors', async () => {
  assert.equal(readAheadFile(55), '/sys/class/bdi/0:55/read_ahead_kb');
  assert.equal(readAheadFile((8 << 8) | 1), '/sys/class/bdi/8:1/read_ahead_kb');
  assert.equal(readAheadFile(44 | (256 << 12), '/x'), '/x/0:300/read_ahead_kb'); // minor 300: its high bits sit above the major's
  // Major 4096, minor 0: the major's high bits sit above the minor's (glibc: from bit 44), and are not part of it.
  assert.equal(readAheadFile(Number(1n << 44n), '/x'), '/x/4096:0/read_ahead_kb');
  // As the kernel numbers /proc in /proc/self/mountinfo (field 3): a file system of its own, no subvolumes.
  const proc = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[4] === '/proc')
    .at(-1)!;
  assert.equal(readAheadFile((await stat('/proc')).dev, ''), `/${proc[2]}/read_ahead_kb`);
});

test('the window is read in bytes, again only once a second has passed, and is 0 when the file cannot be read', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-ra-'));
  try {
    const file = path.join(dir, 'read_ahead_kb');
    await writeFile(file, '1024\n');
    let now = 5000;
    const readAhead = kernelReadAhead(file, () => now);
    assert.equal(readAhead(), 1024 * KiB);
    await writeFile(file, '512\n');
    now += 999;
    assert.equal(readAhead(), 1024 * KiB, 'not read again within a second');
    now += 1;
    assert.equal(readAhead(), 512 * KiB);
    await writeFile(file, 'many\n');
    now += 1000;
    assert.equal(readAhead(), 0);
    await rm(file);
    now += 1000;
    assert.equal(readAhead(), 0);
    assert.equal(kernelReadAhead(path.join(dir, 'none'))(), 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('reads may come out of order by four windows (at most half what the drops keep) only when the window is larger than the default, and only reads of a window', () => {
  let window = DEFAULT_READ_AHEAD;
  const allowed = reorderWindow(() => window);
  assert.equal(allowed(128 * KiB), 0, 'the default window: the reader’s own rule');
  window = 1024 * KiB;
  assert.equal(allowed(128 * KiB), 4096 * KiB);
  assert.equal(allowed(WINDOW_READ), 4096 * KiB);
  assert.equal(allowed(WINDOW_READ - 4 * KiB), 0, 'a short read stays a lone read');
  window = 64 * 1024 * KiB; // root may set any window: what a read may come ahead stays well inside what the drops keep
  assert.equal(allowed(128 * KiB), DROP_KEEP_BEHIND / 2);
  window = 0; // unknown
  assert.equal(allowed(128 * KiB), 0);
});
