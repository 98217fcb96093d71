/**
 * The disk room of downloads in flight (src/cache/disk-room.ts), on a real 20 MB tmpfs (root only): downloads write
 * sparse temporary files, so only what they have yet to write is still to come out of the free space.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DiskRoom, type Release } from '../../src/cache/disk-room.js';

const run = promisify(execFile);
const MiB = 1 << 20;

test('downloads in flight count only what they have yet to write: no part is evicted while there is room', { skip: process.getuid?.() !== 0 && 'needs root (a tmpfs)' }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-disk-room-'));
  await run('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', dir]);
  const files: FileHandle[] = [];
  const releases: Release[] = [];
  try {
    await writeFile(path.join(dir, 'others'), Buffer.alloc(9 * MiB, 1)); // 11 MB left
    const asked: number[] = [];
    const room = new DiskRoom(dir, async (bytes) => {
      asked.push(bytes);
      return { freed: [], bytes: 0 };
    });
    const reserve = (what: string, fh: FileHandle): Promise<Release> =>
      Promise.race([
        room.reserve(2 * MiB, what, async () => (await fh.stat()).blocks * 512),
        new Promise<Release>((_, reject) => setTimeout(() => reject(new Error(`${what}: no room granted in 3 s (evictions asked: ${asked.join(', ')})`)), 3000)),
      ]);
    // Four downloads of 2 MB, each half written; then a fifth: 7 MB are free and 4 MB are still to come.
    for (let i = 0; i < 5; i++) {
      const fh = await open(path.join(dir, `download-${i}`), 'w+');
      files.push(fh);
      releases.push(await reserve(`part ${i}`, fh));
      await fh.truncate(2 * MiB);
      if (i < 4) await fh.write(Buffer.alloc(MiB, 2), 0, MiB, 0);
    }
    assert.deepEqual(asked, [], 'nothing had to be evicted');
  } finally {
    for (const r of releases) r();
    for (const fh of files) await fh.close().catch(() => undefined);
    await run('umount', [dir]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
});
