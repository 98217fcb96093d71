import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findMissing } from '../../src/build/make-image.js';
import { StreamReach } from '../../src/build/stream-reach.js';
import type { ImageSession } from '../../src/engine/session.js';

/** The two fields findMissing uses: the parts (20, one every 1000 bytes) and a store whose look-ups are recorded. */
function session(located: string[]): ImageSession {
  const parts = new Map(Array.from({ length: 20 }, (_, i) => [`k${i}`, { key: `k${i}`, sum: Buffer.alloc(16), length: 100, offsets: [i * 1000] }]));
  const store = { locate: async (key: string) => void located.push(key) };
  return { layout: { parts }, parts: store } as unknown as ImageSession;
}

test('findMissing with a reach: parts in the stream\'s order, no further than the reach; stopping starts none of those it held back', async () => {
  const located: string[] = [];
  const stop = { stopped: false };
  const reach = new StreamReach(2500);
  const done = findMissing(session(located), 8, stop, reach);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(located, ['k0', 'k1', 'k2']);
  reach.advance(1000);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(located, ['k0', 'k1', 'k2', 'k3']);
  // make-image stopping after a failure opens the reach so that nothing waits on it: the held look-ups end, unstarted.
  stop.stopped = true;
  reach.open();
  assert.deepEqual(await done, []);
  assert.deepEqual(located, ['k0', 'k1', 'k2', 'k3']);
});
