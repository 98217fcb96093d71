// `jigdofs status` as text: image names, recent errors and a mirror's errors come from .jigdo files, templates and
// servers, so a hostile one could write terminal controls (ESC, CSI as C1 U+009B, a carriage return that overwrites the
// line). Each is shown escaped; the lines stay the lines formatStatus means.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatStatus, type Status } from '../../src/cli/commands/status.js';
import type { MirrorStats, PartFetchStats } from '../../src/network/mirror-board.js';
import type { CacheStats } from '../../src/cache/cache-stats.js';

/** Any C0 control but the newline between lines, DEL, or C1: what must never reach the terminal from a value. */
const TERMINAL_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

const HOSTILE = 'ima\rge\u009b2J\u001b]0;pwned\u0007.iso';

function status(): Status {
  const mirror = {
    mirror: 'http://x/\u009b31m',
    requests: 1, active: 0, bytes: 0, speed: 0, latencyMs: 0, failures: 1, consecutiveFailures: 1, failuresByKind: { status: 1 },
    demotions: 1, demoted: true, demotedUntil: '2030-01-01T00:00:00Z', demotedWhy: 'slow\u001b[2J', lastError: 'HTTP 500 \u001b[31mred\r', down: false,
  } satisfies MirrorStats;
  const cache = { dir: '/c', bytes: 0, files: 0, limit: 0, hits: 0, misses: 0, evictions: 0 } as unknown as CacheStats;
  return {
    mountpoint: '/mnt',
    pid: 1,
    uptimeSeconds: 2,
    rssBytes: 3,
    images: [{
      name: HOSTILE,
      size: 10,
      parts: { total: 1, local: 0, verified: 0, missing: 1, failed: 0, inFlight: 0, byProvider: {} },
      fromImages: [{ image: 'old\u009b.iso', parts: 1, bytes: 1 }],
      bytesServed: 0,
      reads: 0,
      readErrors: 1,
      cacheHits: {},
      recentErrors: ['part p1\r\u001b[Kfine'],
    }],
    network: {
      offline: false,
      mirrors: [mirror],
      parts: { fetched: 0, inFlight: 0, failed: 0, mismatches: 0, bytes: 0, bytesDownloaded: 0 } as PartFetchStats,
      cache,
      templates: { fetched: 0, fromCache: 0 },
    },
  };
}

test('status text escapes terminal controls in every value from a .jigdo, a template or a server', () => {
  const text = formatStatus(status());
  assert.doesNotMatch(text, TERMINAL_CONTROL, JSON.stringify(text));
  assert.ok(text.includes('  ima\\x0dge\\u009b2J\\x1b]0;pwned\\x07.iso: '), text);
  assert.ok(text.includes('from old\\u009b.iso: '), text);
  assert.ok(text.includes('part p1\\x0d\\x1b[Kfine'), text);
  assert.ok(text.includes('mirror http://x/\\u009b31m: '), text);
  assert.ok(text.includes(': slow\\x1b[2J; last error: HTTP 500 \\x1b[31mred\\x0d'), text);
  assert.equal(text.split('\n').length, 10, 'one line per item, as before');
});

test("a mirror that is down says so in its line, until when and why (the JSON's down fields; the text said only its failures)", () => {
  const st = status();
  const down = { ...st.network!.mirrors[0]!, demoted: false, down: true, downUntil: '2030-01-01T00:00:15Z', downWhy: '4 failures in a row, last: refused\u001b[2J' };
  const text = formatStatus({ ...st, network: { ...st.network!, mirrors: [down] } });
  assert.ok(text.includes('; DOWN (not asked) until 2030-01-01T00:00:15Z, then probed: 4 failures in a row, last: refused\\x1b[2J; last error: '), text);
  assert.doesNotMatch(formatStatus(st), /DOWN/, 'a mirror that is up says nothing of it');
});

test('a mirror whose host limits our requests says how many it takes (the JSON\'s limit)', () => {
  const st = status();
  const limited = { ...st.network!.mirrors[0]!, limit: 2 };
  const text = formatStatus({ ...st, network: { ...st.network!, mirrors: [limited] } });
  assert.ok(text.includes(' demotions; its host takes 2 request(s) at once from us (it answered busy beyond); '), text);
  assert.doesNotMatch(formatStatus(st), /at once from us/, 'an unlimited one says nothing of it');
});

test('a detached daemon: the line after the first says since when and how, and what it serves; other detached daemons of the path are named', () => {
  const since = new Date(Date.now() - 90_000).toISOString();
  const other = { pid: 7, since: '2030-01-01T00:00:00.000Z', why: 'jigdofs umount --lazy', openFiles: 2 };
  const lines = formatStatus({ ...status(), detached: { since, why: 'unmounted from outside', openFiles: 0 }, otherDetached: [other] }).split('\n');
  assert.match(lines[1]!, new RegExp(`^ {2}DETACHED since ${since} \\(9\\d s ago; unmounted from outside\\): not mounted; served until nothing uses it: no file open \\(a working folder in it, say\\)$`));
  assert.equal(lines[2], '  other detached daemons of this path still serving: pid 7 (2 open files, since 2030-01-01T00:00:00.000Z)');
  assert.equal(lines.length, 12);
  assert.doesNotMatch(formatStatus(status()), /DETACHED|detached/, 'a mounted one says nothing of it');
});

test('a mount of the path, with an earlier mount there detached and still serving: the mount, then a line naming that daemon', () => {
  const other = { pid: 7, since: '2030-01-01T00:00:00.000Z', why: 'unmounted from outside', openFiles: 1 };
  const lines = formatStatus({ ...status(), otherDetached: [other] }).split('\n');
  assert.doesNotMatch(lines[1]!, /DETACHED/);
  assert.equal(lines[1], '  other detached daemons of this path still serving: pid 7 (1 open file, since 2030-01-01T00:00:00.000Z)');
});
