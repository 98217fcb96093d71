/**
 * eachLimit (src/util/each-limit.ts), the "N at a time over a list" loop that make-image, the hash index, the part
 * fetch and make-template share: how many run at once, the order they start in, an early stop, and a failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { eachLimit } from '../../src/util/each-limit.js';

test('every item runs once, in order of start, never more than the limit at a time', async () => {
  const started: number[] = [];
  let running = 0;
  let most = 0;
  await eachLimit([...Array(20).keys()], 3, async (i) => {
    started.push(i);
    most = Math.max(most, ++running);
    await sleep(i % 4);
    running--;
  });
  assert.deepEqual(started, [...Array(20).keys()]);
  assert.equal(most, 3);
});

test('no items, or fewer than the limit: fine', async () => {
  await eachLimit([], 8, () => assert.fail('not called'));
  const seen: string[] = [];
  await eachLimit(['a', 'b'], 8, async (s) => void seen.push(s));
  assert.deepEqual(seen, ['a', 'b']);
});

test('stopped: no new item starts, the running ones finish, and it resolves', async () => {
  const done: number[] = [];
  let stop = false;
  await eachLimit(
    [...Array(10).keys()],
    2,
    async (i) => {
      if (i === 3) stop = true;
      await sleep(5);
      done.push(i);
    },
    () => stop,
  );
  assert.deepEqual(done.sort((a, b) => a - b), [0, 1, 2, 3]); // 2 was running beside 3; nothing started after 3
});

test('a failure: nothing new starts, it throws the first error only after the running calls ended', async () => {
  const ended: number[] = [];
  const err = await eachLimit([...Array(10).keys()], 3, async (i) => {
    if (i === 1) throw new Error('one failed');
    if (i === 4) throw new Error('a later failure');
    await sleep(20);
    ended.push(i);
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.equal((err as Error).message, 'one failed');
  assert.deepEqual(ended.sort((a, b) => a - b), [0, 2], 'the calls running at the failure ended before it threw; none started after it');
});
