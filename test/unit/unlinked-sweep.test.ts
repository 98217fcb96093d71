/**
 * The sweep of a part store's open cache files (src/sources/unlinked-sweep.ts): those unlinked by any process (another
 * process's eviction tells this one nothing) are found by one fstat each and handed back to be closed.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { UnlinkedSweep, type SweptHandle } from '../../src/sources/unlinked-sweep.js';
import { waitFor } from '../helpers/network.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** `n` files, each open; their handles as a store holds them. */
async function openFiles(n: number): Promise<{ files: string[]; handles: SweptHandle[]; fhs: FileHandle[] }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-sweep-'));
  dirs.push(dir);
  const files = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const file = path.join(dir, `part-${i}`);
    await writeFile(file, `part ${i}`);
    return file;
  }));
  const fhs = await Promise.all(files.map((f) => open(f, 'r')));
  return { files, fhs, handles: fhs.map((fh, i) => ({ key: `k${i}`, fh: Promise.resolve(fh) })) };
}

const timeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

test('a sweep hands back the unlinked files only; handles that failed or closed are skipped', async () => {
  const { files, handles, fhs } = await openFiles(4);
  const failed: SweptHandle = { key: 'failed', fh: Promise.reject(new Error('ENOENT')) };
  failed.fh.catch(() => undefined);
  const found: string[] = [];
  const sweep = new UnlinkedSweep(() => [...handles, failed], (h) => found.push(h.key));
  await sweep.sweep();
  assert.deepEqual(found, [], 'nothing unlinked yet');
  await unlink(files[1]!);
  await unlink(files[3]!);
  await fhs[3]!.close(); // closed meanwhile (evicted by this process): its fstat fails
  await sweep.sweep();
  assert.deepEqual(found, ['k1']);
  sweep.stop();
  for (const fh of fhs) await fh.close().catch(() => undefined);
});

test('the timer runs while files are open, unref()ed; pauses when none is; stops with the store', async () => {
  const { files, handles, fhs } = await openFiles(2);
  let open = [...handles];
  let looks = 0;
  const found: string[] = [];
  const sweep = new UnlinkedSweep(
    () => {
      looks++;
      return open;
    },
    (h) => {
      found.push(h.key);
      open = open.filter((o) => o !== h); // the store forgets it (closed once no read uses it)
    },
    20,
  );
  await sweep.sweep();
  assert.equal(looks, 1, 'no timer before a cache file is opened');
  const before = timeouts();
  sweep.opened();
  sweep.opened();
  assert.equal(timeouts(), before, 'the timer keeps no command alive');
  await unlink(files[0]!);
  await waitFor(() => found.length === 1, 2_000, 'the unlinked file found by the timer');
  assert.deepEqual(found, ['k0']);
  open = [];
  const paused = async (): Promise<number> => {
    const at = looks;
    await new Promise((r) => setTimeout(r, 100));
    return looks - at;
  };
  await waitFor(async () => (await paused()) === 0, 2_000, 'the timer paused with no file open');
  open = [handles[1]!];
  sweep.opened();
  await unlink(files[1]!);
  await waitFor(() => found.length === 2, 2_000, 'the timer restarted by an open');
  sweep.stop();
  open = [...handles];
  sweep.opened();
  assert.equal(await paused(), 0, 'stopped for good');
  for (const fh of fhs) await fh.close();
});
