/** The request slots: at most n jobs at once, the others started first come first served, a slot freed whatever the job did. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Slots } from '../../src/util/slots.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

test('at most n run at once; waiters start in the order they came, also against later arrivals', async () => {
  const slots = new Slots(2);
  const started: number[] = [];
  const gates = Array.from({ length: 5 }, gate);
  const jobs = gates.map((g, i) => slots.run(async () => {
    started.push(i);
    await g.wait;
    return i;
  }));
  await tick();
  assert.deepEqual(started, [0, 1]);
  gates[1]!.open();
  await tick();
  assert.deepEqual(started, [0, 1, 2]);
  // One arriving now queues behind 3 and 4, though a slot is handed over right after.
  const late = slots.run(async () => {
    started.push(5);
    return 5;
  });
  gates[0]!.open();
  await tick();
  assert.deepEqual(started, [0, 1, 2, 3]);
  for (const g of gates) g.open();
  assert.deepEqual(await Promise.all([...jobs, late]), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5]);
});

test('a failing job gives its slot back; n below 1 means one slot', async () => {
  const slots = new Slots(0);
  await assert.rejects(slots.run(() => Promise.reject(new Error('boom'))), /boom/);
  let running = 0;
  let most = 0;
  await Promise.all(Array.from({ length: 4 }, () => slots.run(async () => {
    most = Math.max(most, ++running);
    await tick();
    running--;
  })));
  assert.equal(most, 1);
});
