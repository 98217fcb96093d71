import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HostFull, HostLimits, type HostTurn } from '../../src/network/host-limits.js';
import { FetchError } from '../../src/network/fetch-error.js';

const A = 'http://a.example/debian/pool/x.deb';
const A2 = 'http://a.example/other/y.deb';
const B = 'http://b.example/debian/pool/x.deb';
const busy = (status = 503, retryAfterMs?: number, url = A): FetchError => new FetchError(url, 'status', `HTTP ${status}`, status, retryAfterMs);
/** A URL of host A of its own (a second busy answer for one URL is not the host's limit). */
const onA = (n: number): string => `http://a.example/debian/pool/${n}.deb`;

function setup(): { limits: HostLimits; lines: string[]; clock: { t: number } } {
  const lines: string[] = [];
  const clock = { t: 1_000_000 };
  return { limits: new HostLimits((l) => lines.push(l), () => clock.t), lines, clock };
}

/** Whether the promise settles within a few event-loop turns. */
async function settles(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true), () => (done = true));
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return done;
}

async function sentTurns(limits: HostLimits, n: number, url = A): Promise<HostTurn[]> {
  const turns: HostTurn[] = [];
  for (let i = 0; i < n; i++) {
    const t = await limits.turn(url, new AbortController().signal);
    t.send();
    turns.push(t);
  }
  return turns;
}

describe('HostLimits', () => {
  test('no limit until the host answers busy', async () => {
    const { limits } = setup();
    await sentTurns(limits, 50);
    assert.equal(limits.limitOf(A), undefined);
  });

  test('a 503 while others of ours ran: the limit is how many others ran, and a new turn waits for one to end', async () => {
    const { limits, lines } = setup();
    const turns = await sentTurns(limits, 3);
    assert.equal(turns[2]!.busy(busy()), true);
    assert.equal(limits.limitOf(A), 2);
    assert.equal(limits.limitOf(A2), 2, 'by host, whatever the path');
    assert.equal(limits.limitOf(B), undefined, 'another host is not limited');
    assert.match(lines.join('\n'), /mirror http:\/\/a\.example refused a request with HTTP 503 while 2 other\(s\) of ours ran: asking it at most 2 at a time/);
    turns[2]!.end();
    const next = limits.turn(A, new AbortController().signal);
    assert.equal(await settles(next), false, 'two turns taken: the third waits');
    turns[0]!.end();
    assert.equal(await settles(next), true, 'one ended: its turn');
    turns[0]!.end(); // a second end of one turn gives nothing back
    assert.equal(await settles(limits.turn(A, new AbortController().signal)), false);
    assert.equal(await settles(limits.turn(B, new AbortController().signal)), true, 'another host does not wait');
  });

  test('a 429 is busy too; the lowest count seen is kept; one log line', async () => {
    const { limits, lines } = setup();
    const turns = await sentTurns(limits, 4);
    assert.equal(turns[3]!.busy(busy(429, undefined, onA(3))), true);
    turns[3]!.end();
    assert.equal(turns[2]!.busy(busy(503, undefined, onA(2))), true);
    turns[2]!.end();
    assert.equal(limits.limitOf(A), 2);
    assert.equal(turns[1]!.busy(busy(503, undefined, onA(1))), true, 'one other still ran');
    assert.equal(limits.limitOf(A), 1);
    assert.equal(lines.length, 1);
  });

  test('not busy: a 503 with no other request of ours running (the server\'s state), or another failure', async () => {
    const { limits } = setup();
    const [one] = await sentTurns(limits, 1);
    assert.equal(one!.busy(busy()), false);
    const more = await sentTurns(limits, 2);
    for (const e of [new FetchError(A, 'status', 'HTTP 500', 500), new FetchError(A, 'not-found', 'HTTP 404', 404), new FetchError(A, 'reset', 'cut')]) {
      assert.equal(more[1]!.busy(e), false, e.message);
    }
    assert.equal(limits.limitOf(A), undefined);
  });

  test('a turn not yet sent (waiting for a request slot) is not counted as one the host was serving', async () => {
    const { limits } = setup();
    const turns = await sentTurns(limits, 2);
    const waiting = await limits.turn(A, new AbortController().signal); // taken, not sent
    assert.equal(turns[1]!.busy(busy()), true);
    assert.equal(limits.limitOf(A), 1);
    // Taken before the limit was learned: when its request slot comes, the host is full, and the turn is given back.
    assert.throws(() => waiting.send(), (e: unknown) => e instanceof HostFull && /at its limit of 1 request\(s\) at once/.test(e.message));
    waiting.end();
    turns[1]!.end();
    const next = limits.turn(A, new AbortController().signal);
    assert.equal(await settles(next), false, 'one still runs');
    turns[0]!.end();
    (await next).send();
  });

  test('the limit grows by one after 30 s without a busy answer', async () => {
    const { limits, clock } = setup();
    const turns = await sentTurns(limits, 3);
    turns[2]!.busy(busy());
    turns[2]!.end();
    clock.t += 29_000;
    turns[1]!.end();
    assert.equal(limits.limitOf(A), 2);
    clock.t += 2_000;
    turns[0]!.end();
    assert.equal(limits.limitOf(A), 3);
  });

  test('Retry-After holds new turns until then', async () => {
    const limits = new HostLimits(() => undefined);
    const turns = await sentTurns(limits, 3);
    turns[2]!.busy(busy(503, 300));
    turns[2]!.end();
    turns[1]!.end(); // room: only the pause holds the next turn
    const t0 = performance.now();
    await limits.turn(A, new AbortController().signal);
    assert.ok(performance.now() - t0 >= 250, `waited ${performance.now() - t0} ms`);
  });

  test('Retry-After holds new turns also when the busy answer is the server\'s state (nothing else of ours ran)', async () => {
    // Found by a review: with no other request running the answer was no limit, and its Retry-After went unheard.
    const limits = new HostLimits(() => undefined);
    const [one] = await sentTurns(limits, 1);
    assert.equal(one!.busy(busy(503, 300)), false, 'the request\'s own failure, as before');
    one!.end();
    assert.equal(limits.limitOf(A), undefined, 'no limit learned');
    const t0 = performance.now();
    await limits.turn(A, new AbortController().signal);
    assert.ok(performance.now() - t0 >= 250, `waited ${performance.now() - t0} ms`);
    assert.equal(await settles(limits.turn(B, new AbortController().signal)), true, 'another host is not held');
  });

  test('a Retry-After pauses the host for one URL four times at most (a CDN\'s bad object answering 503 at every retry)', async () => {
    const { limits, clock } = setup();
    for (let i = 1; i <= 5; i++) {
      const [one] = await sentTurns(limits, 1);
      assert.equal(one!.busy(busy(503, 10_000)), false);
      one!.end();
      const ctl = new AbortController();
      const next = limits.turn(A2, ctl.signal).then((t) => t.end(), () => undefined);
      const paused = !(await settles(next));
      ctl.abort(); // (a paused turn sleeps on the real clock)
      await next;
      assert.equal(paused, i <= 4, `answer ${i}: ${paused ? 'paused' : 'not paused'}`);
      clock.t += 11_000; // the pause over
    }
    // Those were the server's state: the URL can still teach the host's limit later (a review found it could not).
    const turns = await sentTurns(limits, 3);
    assert.equal(turns[2]!.busy(busy()), true, 'a busy answer while others ran: the limit');
    assert.equal(limits.limitOf(A), 2);
  });

  test('past four busy answers to one URL, one more is that URL\'s failure (a CDN\'s bad object): the limit falls no further', async () => {
    const { limits, clock } = setup();
    const turns = await sentTurns(limits, 8);
    // Four ranges of one part refused (a limit of 2 refuses two of a part's four streams at once): each is the limit's.
    for (let i = 7; i >= 4; i--) {
      assert.equal(turns[i]!.busy(busy()), true, `busy answer ${8 - i}`);
      turns[i]!.end();
    }
    assert.equal(limits.limitOf(A), 4);
    assert.equal(turns[3]!.busy(busy()), false, 'a fifth: the URL\'s failure');
    assert.equal(limits.limitOf(A), 4);
    assert.equal(turns[3]!.busy(busy(503, undefined, A2)), true, 'another URL');
    assert.equal(limits.limitOf(A), 3);
    // Once the limit grows again, the URL may be a limit's answer once more.
    turns[3]!.end();
    clock.t += 31_000;
    turns[2]!.end();
    assert.equal(limits.limitOf(A), 4);
    assert.equal(turns[1]!.busy(busy()), true);
  });

  test('an urgent turn (a read waiting for the part) goes ahead of those queued (parts fetched ahead)', async () => {
    const { limits } = setup();
    const turns = await sentTurns(limits, 2);
    turns[1]!.busy(busy());
    turns[1]!.end();
    const ahead = limits.turn(A, new AbortController().signal);
    const read = limits.turn(A, new AbortController().signal, true);
    assert.equal(await settles(read), false);
    turns[0]!.end();
    assert.equal(await settles(read), true, 'the read first');
    assert.equal(await settles(ahead), false);
  });

  test('urgent turns among themselves are first come first served (make-image\'s look-ups are all urgent)', async () => {
    const { limits } = setup();
    const turns = await sentTurns(limits, 2);
    turns[1]!.busy(busy());
    turns[1]!.end();
    const order: string[] = [];
    const waiters = ['first', 'second', 'third'].map((name) => limits.turn(A, new AbortController().signal, true).then((t) => (order.push(name), t)));
    turns[0]!.end();
    (await waiters[0]!).end();
    (await waiters[1]!).end();
    await waiters[2];
    assert.deepEqual(order, ['first', 'second', 'third']);
  });

  test('a waiter that gives up leaves the queue; the next one gets the turn', async () => {
    const { limits } = setup();
    const turns = await sentTurns(limits, 2);
    turns[1]!.busy(busy());
    turns[1]!.end();
    const quitting = new AbortController();
    const first = limits.turn(A, quitting.signal);
    const second = limits.turn(A, new AbortController().signal);
    quitting.abort();
    await assert.rejects(first, (e: unknown) => e instanceof FetchError && e.kind === 'aborted');
    assert.equal(await settles(second), false);
    turns[0]!.end();
    assert.equal(await settles(second), true);
  });
});
