/**
 * The disk room of downloads in flight (src/cache/disk-room.ts), on a real 20 MB tmpfs (root only): downloads write
 * sparse temporary files, so only what they have yet to write is still to come out of the free space.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, open, rm, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DiskRoom, type Release } from '../../src/cache/disk-room.js';

const run = promisify(execFile);
const MiB = 1 << 20;

const needsRoot = { skip: process.getuid?.() !== 0 && 'needs root (a tmpfs)' };

/** A fresh 20 MB tmpfs for `body`, unmounted and removed after it. */
async function onTmpfs(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-disk-room-'));
  await run('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', dir]);
  try {
    await body(dir);
  } finally {
    await run('umount', ['-l', dir]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

test('files evicted while another process holds them open: no more is evicted until their blocks come back', needsRoot, async () => {
  await onTmpfs(async (dir) => {
    // Six cache parts of 3 MiB fill the 20 MB file system, and another process (a mount of the same cache) has them open.
    const parts = Array.from({ length: 6 }, (_, i) => path.join(dir, `part-${i}`));
    for (const f of parts) await writeFile(f, Buffer.alloc(3 * MiB, 1));
    const holder = spawn('sh', ['-c', `${parts.map((f, i) => `exec ${i + 3}<'${f}'`).join('; ')}; echo held; sleep 1.5`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const closed = new Promise<number>((resolve) => holder.on('exit', () => resolve(Date.now())));
    await new Promise((resolve) => holder.stdout.once('data', resolve));
    const evicted: string[] = [];
    const room = new DiskRoom(dir, async () => {
      const file = parts[evicted.length];
      if (!file) return { freed: [], bytes: 0 };
      await unlink(file);
      evicted.push(file);
      return { freed: [file], bytes: 3 * MiB };
    });
    const release = await room.reserve(3 * MiB, 'part x');
    const granted = Date.now();
    release();
    assert.deepEqual(evicted, [parts[0]], 'one eviction was enough, once the holder let go of it');
    assert.ok(granted >= (await closed), 'granted once the holder closed the evicted file');
  });
});

test('downloads in flight count only what they have yet to write: no part is evicted while there is room', needsRoot, async () => {
  await onTmpfs(async (dir) => {
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
    }
  });
});

test('a download that commits while the room is counted: what it wrote is not taken as still to come off the free space', needsRoot, async () => {
  await onTmpfs(async (dir) => {
    // 20 MiB: others hold 12 MiB; download X (4 MiB, half written) is in flight: 6 MiB free, 2 MiB of them still X's.
    await writeFile(path.join(dir, 'others'), Buffer.alloc(12 * MiB, 1));
    const room = new DiskRoom(dir, async () => ({ freed: [], bytes: 0 }));
    const x = await open(path.join(dir, 'x'), 'w+');
    try {
      let finishX: (() => Promise<void>) | undefined;
      const releaseX = await room.reserve(4 * MiB, 'part x', async () => {
        const written = (await x.stat()).blocks * 512;
        await finishX?.(); // X ends right after this count, before the statfs that follows it
        return written;
      });
      await x.truncate(4 * MiB);
      await x.write(Buffer.alloc(2 * MiB, 2), 0, 2 * MiB, 0);
      finishX = async () => {
        finishX = undefined;
        await x.write(Buffer.alloc(2 * MiB, 3), 0, 2 * MiB, 2 * MiB);
        releaseX(); // committed: its 4 MiB stay, and 4 MiB are free
      };
      // 4.5 MiB do not fit in the 4 MiB left. Counting X's 2 MiB as written but no longer reserved, 6 MiB seemed free.
      const b = room.reserve(4.5 * MiB, 'part b');
      const granted = await Promise.race([b.then((release) => (release(), true)), new Promise<false>((resolve) => setTimeout(() => resolve(false), 1000))]);
      assert.equal(granted, false, '4.5 MiB granted with 4 MiB free');
      await unlink(path.join(dir, 'others')); // room, and the waiting reservation is granted
      (await b)();
    } finally {
      await x.close();
    }
  });
});
