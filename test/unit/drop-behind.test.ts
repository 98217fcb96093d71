// fuse/drop-behind.ts: which ranges of a mounted image are dropped behind a sequential stream, and when. The drops
// themselves (fadvise through the mount) are checked by test/integration/mount-page-cache.test.ts with fincore.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DROP_KEEP_BEHIND, DROP_MIN_STREAM, DROP_STEP, DROP_WAIT_MS, DropBehind } from '../../src/fuse/drop-behind.js';
import type { FileRange } from '../../src/util/worker-protocol.js';

const MiB = 1 << 20;

/** A DropBehind whose drops are recorded and finish when `finish` is called. */
function recorder(): { drops: Array<FileRange & { file: string }>; finish: () => void; d: DropBehind } {
  const drops: Array<FileRange & { file: string }> = [];
  let release: () => void = () => undefined;
  const d = new DropBehind('/mnt/image.iso', (file, range) => {
    drops.push({ file, ...range });
    return new Promise<void>((resolve) => (release = resolve));
  });
  return { drops, finish: () => release(), d };
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

test('nothing is dropped behind a short stream; a long one drops all but the last DROP_KEEP_BEHIND', async () => {
  const { drops, finish, d } = recorder();
  for (let end = MiB; end < DROP_MIN_STREAM; end += MiB) d.onStream(0, end);
  assert.equal(drops.length, 0, 'a stream shorter than DROP_MIN_STREAM keeps its pages');
  d.onStream(0, DROP_MIN_STREAM);
  assert.deepEqual(drops, [{ file: '/mnt/image.iso', offset: 0, length: DROP_MIN_STREAM - DROP_KEEP_BEHIND }]);
  finish();
  await settle();
  d.onStream(0, DROP_MIN_STREAM + DROP_STEP - MiB);
  assert.equal(drops.length, 1, 'less than DROP_STEP more: no drop yet');
  d.onStream(0, DROP_MIN_STREAM + DROP_STEP);
  const last = drops[1]!;
  assert.equal(last.offset + last.length, DROP_MIN_STREAM + DROP_STEP - DROP_KEEP_BEHIND);
  assert.ok(last.offset < DROP_MIN_STREAM - DROP_KEEP_BEHIND, 'it overlaps the last drop (a folio across its end)');
  assert.ok(last.offset >= 0);
});

test('one drop at a time: what the stream read meanwhile is dropped once it ends, without another read', async () => {
  const { drops, finish, d } = recorder();
  d.onStream(0, DROP_MIN_STREAM);
  d.onStream(0, DROP_MIN_STREAM + 4 * DROP_STEP);
  assert.equal(drops.length, 1, 'the first is still in flight');
  finish();
  await settle();
  assert.equal(drops.length, 2, 'the progress made meanwhile is caught up at once');
  assert.equal(drops[1]!.offset + drops[1]!.length, DROP_MIN_STREAM + 4 * DROP_STEP - DROP_KEEP_BEHIND);
});

test('a second stream from the same place (a second cp) drops again; reads a little out of order do not restart it', async () => {
  const { drops, finish, d } = recorder();
  const image = 200 * MiB;
  for (let end = MiB; end <= image; end += MiB) {
    d.onStream(0, end);
    if (end % (4 * MiB) === 0) d.onStream(0, end - MiB / 2); // a read handed over late
    finish();
    await settle();
  }
  const first = drops.length;
  assert.ok(first >= 10 && drops.every((r) => r.offset > 0 || r === drops[0]), `one pass from the start: ${JSON.stringify(drops.map((r) => r.offset))}`);
  for (let end = MiB; end <= image; end += MiB) {
    d.onStream(0, end);
    finish();
    await settle();
  }
  assert.ok(drops.length >= 2 * first - 1, `the second read dropped too (${drops.length - first} drops)`);
  assert.equal(drops[first]!.offset, 0, 'from its start');
  const last = drops.at(-1)!;
  assert.equal(last.offset + last.length, image - DROP_KEEP_BEHIND);
});

test('streams are told apart by where they began; a drop never reaches before its stream', async () => {
  const { drops, finish, d } = recorder();
  const second = 500 * MiB;
  d.onStream(second, second + DROP_MIN_STREAM);
  assert.deepEqual(drops.map((r) => r.offset), [second]);
  finish();
  await settle();
  d.onStream(0, DROP_MIN_STREAM);
  assert.deepEqual(drops.map((r) => r.offset), [second, 0]);
});

test('stop waits for the drop in flight and makes no more; pause waits, holds the drops, and resume catches up', async () => {
  const { drops, finish, d } = recorder();
  d.onStream(0, DROP_MIN_STREAM);
  /** Calls `wait` and checks that it resolves only once the drop in flight ends. */
  const waitsForDrop = async (wait: () => Promise<void>, what: string): Promise<void> => {
    let done = false;
    void wait().then(() => (done = true));
    await settle();
    assert.equal(done, false, `${what} waits for the drop in flight`);
    finish();
    await settle();
    assert.equal(done, true, what);
  };
  await waitsForDrop(() => d.pause(), 'pause');
  d.onStream(0, DROP_MIN_STREAM + 2 * DROP_STEP);
  assert.equal(drops.length, 1, 'no drop while paused');
  d.resume();
  assert.equal(drops.length, 2, 'resume makes the drop held back');
  await waitsForDrop(() => d.stop(), 'stop');
  d.onStream(0, DROP_MIN_STREAM + 10 * DROP_STEP);
  assert.equal(drops.length, 2, 'no drop after stop');
});

test('a drop that never ends holds stop for DROP_WAIT_MS at most', async () => {
  const d = new DropBehind('/mnt/image.iso', () => new Promise<void>(() => undefined));
  d.onStream(0, DROP_MIN_STREAM);
  const t0 = Date.now();
  await d.stop();
  const waited = Date.now() - t0;
  assert.ok(waited >= DROP_WAIT_MS - 50 && waited < DROP_WAIT_MS + 2000, `waited ${waited} ms`);
});

test('a failed drop is no error, and the next one is made', async () => {
  const calls: FileRange[] = [];
  const d = new DropBehind('/mnt/image.iso', (_file, range) => {
    calls.push(range);
    return Promise.reject(new Error('ENOTCONN'));
  });
  d.onStream(0, DROP_MIN_STREAM);
  await settle();
  await settle();
  d.onStream(0, DROP_MIN_STREAM + DROP_STEP);
  assert.equal(calls.length, 2);
});
