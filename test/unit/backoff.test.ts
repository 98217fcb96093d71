/**
 * The wait between rounds of retries: it grows, but never past MAX_BACKOFF_MS (plus its jitter), and nothing handed to
 * setTimeout is over 2^31-1 ms, which Node would turn into 1 ms (a retry at once, in a loop).
 */
import { afterEach, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { backoff, MAX_BACKOFF_MS, MAX_TIMER_MS, sleep } from '../../src/network/backoff.js';
import { HttpClient } from '../../src/network/http-client.js';

describe('backoff', () => {
  afterEach(() => mock.restoreAll());

  test('grows by round, then stays at the cap (±25 %) for every later round', () => {
    mock.method(Math, 'random', () => 0.5); // no jitter
    assert.equal(backoff(1), 500);
    assert.equal(backoff(2), 1500);
    assert.equal(backoff(3), 4500);
    for (const round of [5, 8, 15, 20, 100, 1000, 10_000]) assert.equal(backoff(round), MAX_BACKOFF_MS, `round ${round}`);
    assert.ok(MAX_BACKOFF_MS <= 60_000, 'a round waits a minute at most');
  });

  test('the jitter stays within ±25 % of the cap, far under what setTimeout takes', () => {
    for (const r of [0, 0.999999]) {
      mock.method(Math, 'random', () => r);
      const ms = backoff(40);
      assert.ok(ms >= MAX_BACKOFF_MS * 0.75 && ms <= MAX_BACKOFF_MS * 1.25, `${ms}`);
      assert.ok(Number.isFinite(ms) && ms < MAX_TIMER_MS);
      mock.restoreAll();
    }
  });

  test('sleep never hands setTimeout more than 2^31-1 ms (Node would wait 1 ms)', () => {
    const delays: number[] = [];
    mock.method(globalThis, 'setTimeout', (_fn: () => void, ms: number) => {
      delays.push(ms);
      return 0 as unknown as NodeJS.Timeout;
    });
    void sleep(2 ** 40);
    void sleep(Infinity);
    void sleep(-5);
    assert.deepEqual(delays, [MAX_TIMER_MS, MAX_TIMER_MS, 0]);
  });
});

test("many downloads waiting between retries on the HTTP client's closing signal: no MaxListenersExceededWarning, and its close ends every wait", async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.name);
  process.on('warning', onWarning);
  const http = new HttpClient({ timeoutMs: 1000, connections: 4, fetchThreads: 0 });
  try {
    const waits = Array.from({ length: 32 }, () => sleep(60_000, http.closing));
    await new Promise((r) => setTimeout(r, 10));
    const t0 = Date.now();
    await http.close();
    await Promise.all(waits);
    assert.ok(Date.now() - t0 < 1000, 'the waits ended at the close');
    await new Promise((r) => setImmediate(r)); // (warnings are emitted on the next tick)
    assert.deepEqual(warnings.filter((w) => w === 'MaxListenersExceededWarning'), []);
  } finally {
    process.off('warning', onWarning);
  }
});
