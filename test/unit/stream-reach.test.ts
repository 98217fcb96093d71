import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamReach } from '../../src/build/stream-reach.js';

/** Whether the promise settles within a few event-loop turns. */
async function settles(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return done;
}

test('StreamReach: look-ups within `ahead` of the stream go at once; later ones wait until the stream comes near', async () => {
  const reach = new StreamReach(100);
  assert.equal(await settles(reach.within(0)), true);
  assert.equal(await settles(reach.within(99)), true);
  const at150 = reach.within(150);
  const at400 = reach.within(400);
  assert.equal(await settles(at150), false);
  reach.advance(50);
  assert.equal(await settles(at150), false, '150 is not below 50 + 100');
  reach.advance(51);
  assert.equal(await settles(at150), true);
  assert.equal(await settles(at400), false);
  reach.advance(10); // never backwards
  assert.equal(await settles(reach.within(150)), true);
  reach.open();
  assert.equal(await settles(at400), true, 'open: every look-up goes');
  assert.equal(await settles(reach.within(1e15)), true);
});

test('StreamReach: no bound when the cache holds every part (Infinity)', async () => {
  assert.equal(await settles(new StreamReach(Infinity).within(1e15)), true);
});
