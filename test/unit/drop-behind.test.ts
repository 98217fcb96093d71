// fuse/drop-behind.ts: which ranges of a mounted image are dropped behind a sequential stream, and when. The drops
// themselves (fadvise through the mount) are checked by test/integration/mount.test.ts with fincore.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DROP_KEEP_BEHIND, DROP_MIN_STREAM, DROP_STEP, DropBehind } from '../../src/fuse/drop-behind.js';
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

test('one drop at a time: a stream that moves on meanwhile is caught up by the next', async () => {
  const { drops, finish, d } = recorder();
  d.onStream(0, DROP_MIN_STREAM);
  d.onStream(0, DROP_MIN_STREAM + 4 * DROP_STEP);
  assert.equal(drops.length, 1, 'the first is still in flight');
  finish();
  await settle();
  d.onStream(0, DROP_MIN_STREAM + 4 * DROP_STEP + MiB);
  assert.equal(drops.length, 2);
  assert.equal(drops[1]!.offset + drops[1]!.length, DROP_MIN_STREAM + 4 * DROP_STEP + MiB - DROP_KEEP_BEHIND);
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

test('stop waits for the drop in flight and makes no more; idle waits without stopping', async () => {
  const { drops, finish, d } = recorder();
  d.onStream(0, DROP_MIN_STREAM);
  let idle = false;
  void d.idle().then(() => (idle = true));
  let stopped = false;
  void d.stop().then(() => (stopped = true));
  await settle();
  assert.equal(idle || stopped, false, 'both wait for the drop in flight');
  finish();
  await settle();
  assert.equal(idle && stopped, true);
  d.onStream(0, DROP_MIN_STREAM + 10 * DROP_STEP);
  assert.equal(drops.length, 1, 'no drop after stop');
});

test('a failed drop is no error, and the next one is made', async () => {
  const calls: FileRange[] = [];
  const d = new DropBehind('/mnt/image.iso', (_file, range) => {
    calls.push(range);
    return Promise.reject(new Error('ENOTCONN'));
  });
  d.onStream(0, DROP_MIN_STREAM);
  await d.idle();
  await settle();
  d.onStream(0, DROP_MIN_STREAM + DROP_STEP);
  assert.equal(calls.length, 2);
});
