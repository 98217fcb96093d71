// make-image's switch from direct to buffered output (src/build/disk-wait.ts): only once enough blocks show the loop
// waiting for direct writes, and only while the process leaves the CPU room for buffered writes' copies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DiskWait, type DiskWaitHost } from '../../src/build/disk-wait.js';

/** A host whose clock and CPU time the test moves: `run(ms, busy)` passes ms with `busy` cores' worth of CPU. */
function fakeHost(cores = 2): DiskWaitHost & { run(ms: number, busy: number): void } {
  let now = 1000;
  let cpu = 5000;
  return { now: () => now, cpuMs: () => cpu, cores, run: (ms, busy) => ((now += ms), (cpu += ms * busy)) };
}

test('DiskWait: the loop waiting on direct writes a third of the time, one core busy of two: go buffered, not before 24 blocks', () => {
  const host = fakeHost();
  const w = new DiskWait(host);
  for (let i = 0; i < 23; i++) {
    host.run(30, 1);
    w.add(10, 25); // waited 10 ms, of which the write (25 ms after its hash) held all 10
  }
  assert.equal(w.tooSlow, false, 'too few blocks to judge');
  host.run(30, 1);
  w.add(10, 25);
  assert.equal(w.tooSlow, true);
});

test('DiskWait: direct writes that end before the hash, or hold the loop only a little, stay direct', () => {
  const host = fakeHost();
  const early = new DiskWait(host);
  const little = new DiskWait(host);
  const short = new DiskWait(host);
  for (let i = 0; i < 100; i++) {
    host.run(30, 1);
    early.add(20, -5); // the hash was what the loop waited for
    little.add(20, 3); // of 30 ms, 3 for the disk: 10 %
    short.add(2, 25); // the write ended long after its hash, but the loop waited only 2 ms of it
  }
  assert.equal(early.tooSlow, false);
  assert.equal(little.tooSlow, false);
  assert.equal(short.tooSlow, false, 'only the time the loop waited counts');
});

test('DiskWait: a busy CPU (over HTTP: fetching, hashing) keeps direct writes however long they wait', () => {
  const host = fakeHost(2);
  const w = new DiskWait(host);
  for (let i = 0; i < 100; i++) {
    host.run(30, 1.4); // 70 % of two cores
    w.add(20, 20);
  }
  assert.equal(w.tooSlow, false);
  const roomy = fakeHost(4);
  const w4 = new DiskWait(roomy);
  for (let i = 0; i < 100; i++) {
    roomy.run(30, 1.4); // 35 % of four
    w4.add(20, 20);
  }
  assert.equal(w4.tooSlow, true);
});
