/**
 * settleAll and unlessAborted: the rules a multi-source read relies on (src/util/settle.ts). FUSE takes its
 * reply buffer back once a read is answered, so a read must settle only after every job stopped writing,
 * yet a failure must abort the others at once instead of waiting for a slow source.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { onAbort } from '../../src/util/on-abort.js';
import { settleAll, settleEach, settledWithin, throwIfAborted, unlessAborted } from '../../src/util/settle.js';

const after = <T>(ms: number, value: T): Promise<T> => new Promise((r) => setTimeout(() => r(value), ms));

describe('settleAll', () => {
  test('resolves once every job resolved', async () => {
    const done: number[] = [];
    await settleAll((_signal, jobs) => {
      for (const ms of [30, 5, 15]) jobs.push(after(ms, ms).then((v) => done.push(v)));
    });
    assert.deepEqual(done.sort((a, b) => a - b), [5, 15, 30]);
  });

  test('throws the first failure, but only after the jobs still writing have ended', async () => {
    let lateWriteEnded = false;
    const started = Date.now();
    await assert.rejects(
      settleAll((_signal, jobs) => {
        jobs.push(after(5, 0).then(() => Promise.reject(new Error('first'))));
        jobs.push(after(40, 0).then(() => (lateWriteEnded = true)));
        jobs.push(after(10, 0).then(() => Promise.reject(new Error('second'))));
      }),
      /first/,
    );
    assert.ok(lateWriteEnded, 'a job still writing must end before the read settles');
    assert.ok(Date.now() - started >= 35);
  });

  test('the first failure aborts the signal the other jobs see', async () => {
    let seen: AbortSignal | undefined;
    await assert.rejects(
      settleAll((signal, jobs) => {
        seen = signal;
        jobs.push(Promise.reject(new Error('boom')));
        // A job waiting on a source that takes long: unlessAborted ends its wait at the abort.
        jobs.push(unlessAborted(after(10_000, 0), signal));
      }),
      /boom/,
    );
    assert.equal(seen?.aborted, true);
  });

  test('a throw while starting jobs still waits for the jobs already started', async () => {
    let ended = false;
    await assert.rejects(
      settleAll((_signal, jobs) => {
        jobs.push(after(20, 0).then(() => (ended = true)));
        throw new Error('start failed');
      }),
      /start failed/,
    );
    assert.ok(ended);
  });

  test('an outer signal aborts the jobs too', async () => {
    const outer = new AbortController();
    setTimeout(() => outer.abort(new Error('outer')), 10);
    await assert.rejects(
      settleAll((signal, jobs) => jobs.push(unlessAborted(after(10_000, 0), signal)), outer.signal),
      /outer/,
    );
  });
});

describe('settleEach', () => {
  test('runs the tasks in order, at most `limit` at once, as many lanes as tasks', async () => {
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const task = (i: number) => async (): Promise<void> => {
      order.push(i);
      most = Math.max(most, ++running);
      await after(2, 0);
      running--;
    };
    await settleEach(Array.from({ length: 20 }, (_, i) => task(i)), 3);
    assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => i));
    assert.equal(most, 3);
    most = 0;
    await settleEach([task(0)], 256);
    assert.equal(most, 1);
    await settleEach([], 4);
  });

  test('a failure aborts the running tasks and starts no more; its error is thrown once they ended', async () => {
    const started: number[] = [];
    let ended = 0;
    function* tasks(): Generator<(signal: AbortSignal) => Promise<void>> {
      for (let i = 0; i < 100; i++) {
        yield async (signal) => {
          started.push(i);
          if (i === 2) throw new Error('bad region');
          await unlessAborted(after(10_000, 0), signal).catch(() => undefined);
          ended++;
        };
      }
    }
    await assert.rejects(settleEach(tasks(), 4), /bad region/);
    assert.deepEqual(started, [0, 1, 2, 3]);
    assert.equal(ended, 3, 'the others were cut short and ended before it threw');
  });

  test('an outer signal aborts them too', async () => {
    const outer = new AbortController();
    setTimeout(() => outer.abort(new Error('outer')), 10);
    await assert.rejects(settleEach([(signal) => unlessAborted(after(10_000, 0), signal)], 2, outer.signal), /outer/);
  });

  test('an outer abort while a task runs that ends well: the tasks left unrun make it fail, never resolve', async () => {
    // Lanes that just stopped at the abort left tasks unrun, their bytes unwritten, and settleEach resolved.
    const outer = new AbortController();
    const ran: number[] = [];
    const task = (i: number) => async (): Promise<void> => {
      ran.push(i);
      if (i === 0) outer.abort(new Error('outer'));
      await after(1, 0);
    };
    await assert.rejects(settleEach([0, 1, 2, 3, 4].map(task), 1, outer.signal), /outer/);
    assert.deepEqual(ran, [0]);
  });
});

describe('onAbort', () => {
  test('calls each waiting function once at the abort, none that stopped; at once on an aborted signal', () => {
    const c = new AbortController();
    const calls: string[] = [];
    onAbort(c.signal, () => calls.push('a'));
    const stop = onAbort(c.signal, () => calls.push('b'));
    const f = (): number => calls.push('f');
    onAbort(c.signal, f);
    onAbort(c.signal, f);
    stop();
    c.abort();
    c.abort();
    assert.deepEqual(calls, ['a', 'f', 'f']);
    onAbort(c.signal, () => calls.push('late'));
    assert.deepEqual(calls, ['a', 'f', 'f', 'late']);
  });

  test('a waiting function that throws: the others are still called, the throw is reported', async () => {
    const c = new AbortController();
    const calls: string[] = [];
    onAbort(c.signal, () => calls.push('a'));
    onAbort(c.signal, () => {
      throw new Error('waiter broke');
    });
    onAbort(c.signal, () => calls.push('c'));
    // The throw is rethrown from a microtask (an uncaught exception, as a listener's): taken here instead of by the runner.
    const queued: Array<() => void> = [];
    const original = globalThis.queueMicrotask;
    globalThis.queueMicrotask = (cb) => void queued.push(cb);
    try {
      c.abort();
    } finally {
      globalThis.queueMicrotask = original;
    }
    assert.deepEqual(calls, ['a', 'c']);
    assert.equal(queued.length, 1);
    assert.throws(() => queued[0]!(), /waiter broke/);
  });

  test('200,000 waiting on one signal take a linear time (a listener each was quadratic)', async () => {
    // Not a timing test of speed: quadratic here is minutes, linear well under a second; 20 s only tells them apart.
    const c = new AbortController();
    const t0 = Date.now();
    const waits = Array.from({ length: 200_000 }, () => unlessAborted(new Promise<never>(() => undefined), c.signal));
    c.abort(new Error('stop'));
    const results = await Promise.allSettled(waits);
    assert.ok(results.every((r) => r.status === 'rejected'));
    assert.ok(Date.now() - t0 < 20_000, `took ${Date.now() - t0} ms`);
  });
});

describe('unlessAborted and throwIfAborted', () => {
  test('pass the value through when nothing aborts', async () => {
    assert.equal(await unlessAborted(after(1, 7), new AbortController().signal), 7);
    assert.equal(await unlessAborted(after(1, 8), undefined), 8);
    throwIfAborted(undefined);
    throwIfAborted(new AbortController().signal);
  });

  test('reject at once with the reason of a signal already aborted', async () => {
    const c = new AbortController();
    c.abort(new Error('gone'));
    await assert.rejects(unlessAborted(Promise.reject(new Error('ignored')), c.signal), /gone/);
    assert.throws(() => throwIfAborted(c.signal), /gone/);
  });
});

describe('settledWithin', () => {
  test('resolves with the promise, or after the time when it hangs; rejects as it does', async () => {
    let t0 = Date.now();
    await settledWithin(after(10, 'x'), 5_000);
    assert.ok(Date.now() - t0 < 2_000, 'did not wait out the time');
    t0 = Date.now();
    await settledWithin(new Promise(() => undefined), 100);
    assert.ok(Date.now() - t0 >= 90, 'waited the time');
    await assert.rejects(settledWithin(Promise.reject(new Error('boom')), 5_000), /boom/);
  });
});
