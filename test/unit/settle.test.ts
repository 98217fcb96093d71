/**
 * settleAll and unlessAborted: the rules a multi-source read relies on (src/util/settle.ts). FUSE takes its
 * reply buffer back once a read is answered, so a read must settle only after every job stopped writing,
 * yet a failure must abort the others at once instead of waiting for a slow source.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { settleAll, settledWithin, throwIfAborted, unlessAborted } from '../../src/util/settle.js';

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
