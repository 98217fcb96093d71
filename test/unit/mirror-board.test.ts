/**
 * The mirror board's "down" policy, on a fake clock: a mirror that stalls or refuses connections several
 * times in a row is skipped without a request, one probe at a time may try it once its time is up, a
 * failed probe keeps it down twice as long, and any answer brings it back. And its demotion policy (the
 * 'mirror speed' test, once in network.test.ts): failing and much slower mirrors are ordered last for a while.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FailureKind } from '../../src/network/fetch-error.js';
import { MirrorBoard, TRUST_AFTER_PARTS } from '../../src/network/mirror-board.js';

const M = 'http://dead.example/debian/';

function setup() {
  const clock = { now: 1_000_000 };
  const lines: string[] = [];
  const board = new MirrorBoard((l) => lines.push(l), () => clock.now);
  /** One request that ends as `kind` ('ok': it delivered). */
  const request = (kind: FailureKind | 'ok', message = 'stalled: no data in time', mirror = M): void => {
    board.requestStarted(mirror);
    if (kind === 'ok') board.requestDone(mirror, 1000, 10, 5);
    else board.requestFailed(mirror, kind, message);
  };
  return { clock, lines, board, request };
}

describe('a mirror that does not answer is down', () => {
  test('three stalls or connect failures in a row take it down: skipped with a reason naming it', () => {
    const { board, request, lines } = setup();
    request('timeout', 'no response headers in time');
    request('connect', 'cannot connect (ECONNREFUSED)');
    assert.equal(board.refusal(M), undefined, 'two failures: still tried');
    assert.equal(board.admit(M), undefined);
    request('timeout', 'no response headers in time');
    const why = `mirror ${M} is not answering: 3 failures in a row, last: no response headers in time`;
    assert.equal(board.refusal(M), why);
    assert.equal(board.admit(M), why, 'no request is let through');
    assert.match(lines.join('\n'), /mirror http:\/\/dead\.example\/debian\/ is not answering \(3 failures in a row, last: .*\): skipped for 15 s/);
    const s = board.snapshot().mirrors[0]!;
    assert.equal(s.down, true);
    assert.equal(s.downWhy, '3 failures in a row, last: no response headers in time');
    assert.equal(s.downUntil, new Date(1_000_000 + 15_000).toISOString());
    assert.deepEqual(JSON.parse(JSON.stringify(board.snapshot())), board.snapshot());
  });

  test('an answer in between, even a failing one, means it is up', () => {
    const { board, request } = setup();
    for (const answer of ['not-found', 'status', 'reset', 'wrong-size', 'slow', 'ok'] as const) {
      request('timeout');
      request('timeout');
      request(answer, 'HTTP 404');
      request('timeout');
      assert.equal(board.refusal(M), undefined, `${answer} in between`);
      request('ok');
    }
    // Our own cancellations say nothing about the mirror either way.
    request('timeout');
    request('aborted', 'aborted');
    request('timeout');
    request('timeout');
    assert.match(board.refusal(M) ?? '', /3 failures in a row/);
  });

  test('after a while one probe goes through; it failing keeps the mirror down twice as long', () => {
    const { board, request, clock } = setup();
    for (let i = 0; i < 3; i++) request('timeout');
    clock.now += 14_999;
    assert.ok(board.admit(M), 'still down');
    clock.now += 1;
    assert.equal(board.refusal(M), undefined, 'a probe is due');
    assert.equal(board.admit(M), undefined, 'the probe goes');
    assert.ok(board.admit(M), 'only one probe at a time');
    assert.ok(board.refusal(M));
    request('timeout', 'stalled again');
    assert.match(board.admit(M) ?? '', /4 failures in a row, last: stalled again/);
    clock.now += 29_999;
    assert.ok(board.admit(M), 'down for 30 s after the failed probe');
    clock.now += 1;
    assert.equal(board.admit(M), undefined, 'the next probe');
    request('ok');
    assert.equal(board.refusal(M), undefined, 'up again');
    assert.equal(board.admit(M), undefined);
    assert.equal(board.admit(M), undefined, 'every request goes through');
    assert.equal(board.snapshot().mirrors[0]!.down, false);
  });

  test('a probe we cut lets the next request probe; stragglers do not stretch the down time', () => {
    const { board, request, clock } = setup();
    for (let i = 0; i < 3; i++) request('timeout');
    request('timeout', 'a request started before it went down');
    clock.now += 15_000;
    assert.equal(board.admit(M), undefined, 'the probe');
    request('aborted', 'aborted');
    assert.equal(board.admit(M), undefined, 'another probe, since the first told nothing');
  });

  test('refused connections alone (no timeout: a server restarting) take it down for 1 s first, not 15 s; doubling up to five minutes', () => {
    const { board, request, clock, lines } = setup();
    for (let i = 0; i < 3; i++) request('connect', 'cannot connect (ECONNREFUSED)');
    assert.match(lines.join('\n'), /skipped for 1 s/);
    assert.equal(board.msToQuickProbe(M), 1000);
    clock.now += 999;
    assert.ok(board.admit(M), 'still down');
    assert.equal(board.msToQuickProbe(M), 1);
    clock.now += 1;
    assert.equal(board.msToQuickProbe(M), 0);
    assert.equal(board.admit(M), undefined, 'the probe');
    assert.ok(board.refusal(M), 'a probe is under way: others wait');
    assert.equal(board.msToQuickProbe(M), 0);
    request('ok');
    assert.equal(board.msToQuickProbe(M), undefined, 'up');
    // One timeout in the streak: each request may cost one, so 15 s, and not worth waiting for.
    request('connect', 'cannot connect (ECONNREFUSED)');
    request('timeout', 'no response headers in time');
    request('connect', 'cannot connect (ECONNREFUSED)');
    assert.ok(board.refusal(M));
    assert.equal(board.msToQuickProbe(M), undefined);
    assert.equal(board.snapshot().mirrors[0]!.downUntil, new Date(clock.now + 15_000).toISOString());
    // Refused probes double from 1 s.
    const q = setup();
    for (let i = 0; i < 3; i++) q.request('connect', 'cannot connect (ECONNREFUSED)');
    let ms = 1000;
    for (let probe = 0; probe < 10; probe++) {
      assert.equal(q.board.msToQuickProbe(M), ms, `probe ${probe}`);
      q.clock.now += ms;
      assert.equal(q.board.admit(M), undefined, `probe ${probe}`);
      q.request('connect', 'cannot connect (ECONNREFUSED)');
      ms = Math.min(300_000, ms * 2);
    }
  });

  test('a host or network out of reach, or a name that does not resolve, is no quick down (each may take seconds)', () => {
    for (const code of ['ENETUNREACH', 'EHOSTUNREACH', 'EAI_AGAIN', 'ENOTFOUND']) {
      const { board, request } = setup();
      for (let i = 0; i < 3; i++) request('connect', `cannot connect (${code})`);
      assert.ok(board.refusal(M), code);
      assert.equal(board.msToQuickProbe(M), undefined, code);
    }
  });

  test('a quick down whose probe times out (the server back, but hanging) is down 15 s next, and no longer quick', () => {
    const { board, request, clock } = setup();
    for (let i = 0; i < 3; i++) request('connect', 'cannot connect (ECONNREFUSED)');
    clock.now += 1000;
    assert.equal(board.admit(M), undefined, 'the probe');
    request('timeout', 'no response headers in time');
    assert.equal(board.msToQuickProbe(M), undefined);
    assert.equal(board.snapshot().mirrors[0]!.downUntil, new Date(clock.now + 15_000).toISOString());
  });

  test('the down time doubles up to five minutes; other mirrors are not affected', () => {
    const { board, request, clock } = setup();
    for (let i = 0; i < 3; i++) request('connect', 'cannot connect (EHOSTUNREACH)');
    let ms = 15_000;
    for (let probe = 0; probe < 8; probe++) {
      clock.now += ms;
      assert.equal(board.admit(M), undefined, `probe ${probe}`);
      request('connect', 'cannot connect (EHOSTUNREACH)');
      ms = Math.min(300_000, ms * 2);
      clock.now += ms - 1;
      assert.ok(board.admit(M), `still down ${ms} ms after probe ${probe}`);
      clock.now += 1 - ms;
    }
    assert.equal(board.admit('http://other.example/'), undefined);
  });
});

describe('mirror speed', () => {
  test('the mirror board: failing and much slower mirrors are demoted for a while, then tried again', () => {
    let now = 1_000_000;
    const lines: string[] = [];
    const board = new MirrorBoard((l) => lines.push(l), () => now);
    const c = (mirror: string, weight = 0, user = false) => ({ mirror, weight, user });
    const [a, b, x] = [c('http://a/'), c('http://b/'), c('http://x/')];
    assert.equal(board.probe([a, b])?.mirror, 'http://b/', 'the first fetch measures the other mirror');
    assert.equal(board.probe([a, b]), undefined, 'then only one fetch in eight');
    assert.equal(board.probe([c('http://u/', 0, true), b]), undefined, 'a mirror the user named is not second-guessed');
    // Three failures in a row: demoted, ordered last, for 30 s.
    for (let i = 0; i < 3; i++) {
      board.requestStarted(a.mirror);
      board.requestFailed(a.mirror, 'status', 'HTTP 500');
    }
    assert.deepEqual(board.order([a, b]).map((m) => m.mirror), ['http://b/', 'http://a/']);
    assert.match(lines.join('\n'), /mirror http:\/\/a\/ demoted for 30 s: 3 failures in a row \(last: HTTP 500\)/);
    now += 31_000;
    assert.deepEqual(board.order([a, b]).map((m) => m.mirror), ['http://a/', 'http://b/'], 'forgiven after a while');
    // Much slower (latency and bandwidth for 1 MiB): demoted once both are measured.
    for (let i = 0; i < 3; i++) {
      board.requestStarted(b.mirror);
      board.requestDone(b.mirror, 1 << 20, 20, 2);
    }
    assert.equal(board.isDemoted(x.mirror), false);
    for (let i = 0; i < 3; i++) {
      board.requestStarted(x.mirror);
      board.requestDone(x.mirror, 1 << 20, 900, 300);
    }
    assert.equal(board.isDemoted(x.mirror), true);
    const snap = board.snapshot();
    const xs = snap.mirrors.find((m) => m.mirror === 'http://x/')!;
    assert.equal(xs.demoted, true);
    assert.match(xs.demotedWhy ?? '', /^slow: \d+ ms per MiB, the best mirror needs \d+ ms$/);
    assert.equal(snap.mirrors.find((m) => m.mirror === 'http://b/')!.demoted, false);
    assert.ok(snap.mirrors.every((m) => m.active === 0), 'no request left active');
    assert.deepEqual(JSON.parse(JSON.stringify(snap)), snap);
  });
});

describe('a mirror that lacks files', () => {
  test('404s never demote a mirror that has delivered; 16 in a row before it delivered anything do', () => {
    const { board, request, lines, clock } = setup();
    const [partial, wrong, b] = ['http://partial/', 'http://wrong/', 'http://b/'];
    const order = (): string[] => board.order([{ mirror: partial }, { mirror: wrong }, { mirror: b }]).map((m) => m.mirror);
    for (let i = 0; i < 15; i++) request('not-found', 'HTTP 404', partial); // it has not delivered yet: 15 are not enough
    request('ok', '', partial);
    for (let i = 0; i < 100; i++) request('not-found', 'HTTP 404', partial);
    assert.equal(board.isDemoted(partial), false, 'a partial mirror is not demoted by its 404s');
    assert.equal(board.snapshot().mirrors.find((m) => m.mirror === partial)!.consecutiveFailures, 0);
    request('status', 'HTTP 500', partial);
    request('not-found', 'HTTP 404', partial);
    request('status', 'HTTP 500', partial);
    assert.equal(board.isDemoted(partial), false, '404s in between other failures do not count toward them');
    request('status', 'HTTP 500', partial);
    assert.equal(board.isDemoted(partial), true, 'three other failures in a row still do');
    for (let i = 0; i < 15; i++) request('not-found', 'HTTP 404', wrong);
    assert.equal(board.isDemoted(wrong), false);
    request('not-found', 'HTTP 404 for x.deb', wrong);
    assert.equal(board.isDemoted(wrong), true, 'a mirror where nothing was ever found is demoted');
    assert.equal(order()[0], b, 'the healthy one first');
    clock.now += 30_000;
    assert.equal(board.isDemoted(wrong), false, 'forgiven after 30 s');
    request('not-found', 'HTTP 404', wrong);
    assert.equal(board.isDemoted(wrong), true, 'the next 404 demotes it again');
    clock.now += 59_999;
    assert.equal(board.isDemoted(wrong), true, 'for twice as long');
    assert.match(lines.join('\n'), /mirror http:\/\/wrong\/ demoted for 30 s: 16 files in a row not found and none found \(last: HTTP 404 for x\.deb\)/);
  });
});

describe('trust for verify once', () => {
  test('a mirror is trusted after TRUST_AFTER_PARTS right parts, never after wrong bytes; others are not affected', () => {
    const { board } = setup();
    const other = 'http://other.example/debian/';
    assert.equal(board.trusted(M), false, 'unknown: not trusted');
    for (let i = 1; i < TRUST_AFTER_PARTS; i++) board.partRight(M);
    assert.equal(board.trusted(M), false, 'one part short');
    board.partRight(M);
    assert.equal(board.trusted(M), true);
    assert.equal(board.trusted(other), false);
    board.mismatch(M, 'wrong bytes for part X');
    for (let i = 0; i < 2 * TRUST_AFTER_PARTS; i++) board.partRight(M);
    assert.equal(board.trusted(M), false, 'wrong bytes once: hashed part by part from then on');
  });
});

describe('exploration (probe)', () => {
  const cand = (url: string, mirror: string) => ({ url, mirror, weight: 0, user: false });

  test("another URL on the first one's mirror is not probed: a different mirror is", () => {
    const first = cand('http://a.example/debian/pool/x.deb', 'http://a.example/debian/');
    const samePlace = cand('http://a.example/debian/other/x.deb', 'http://a.example/debian/');
    const elsewhere = cand('http://b.example/debian/pool/x.deb', 'http://b.example/debian/');
    assert.equal(new MirrorBoard().probe([first, samePlace]), undefined, 'one mirror: nothing to explore');
    assert.equal(new MirrorBoard().probe([first, samePlace, elsewhere]), elsewhere);
  });
});
