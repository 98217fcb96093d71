/** Which files of a spill folder a new session removes (cache/spill-name.ts), and which the size limit counts. */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { deadSpillFile, FINISHED_SPILL, spillName, spillTempName } from '../../src/cache/spill-name.js';
import { ownerTag } from '../../src/util/pid.js';

let deadPid: number;
const digest = 'ab'.repeat(16);
const final = path.join('/cache/inflated/x', spillName(3, 270_532_608, digest));

before(() => {
  deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
});

test('a temporary spill is named after this host and process, and is not a finished spill', () => {
  const tmp = path.basename(spillTempName(final));
  assert.ok(tmp.startsWith(`chunk-3-270532608-${digest}.${ownerTag()}-`), tmp);
  assert.notEqual(path.basename(spillTempName(final)), tmp, 'two names in one millisecond differ');
  assert.ok(!FINISHED_SPILL.test(tmp));
  assert.ok(FINISHED_SPILL.test(path.basename(final)));
  assert.equal(deadSpillFile(tmp), false, 'our own, live');
});

test("a dead process's temporary spill of this host goes; another host's stays (its pids mean nothing here)", () => {
  const base = path.basename(final);
  assert.equal(deadSpillFile(`${base}.${ownerTag(deadPid)}-17000000000001.tmp`), true);
  const otherHost = ownerTag(deadPid).replace(/^[0-9a-f]{8}/, (tag) => (tag === '00000000' ? '11111111' : '00000000'));
  assert.equal(deadSpillFile(`${base}.${otherHost}-17000000000001.tmp`), false);
});

test("an older build's names: a dead pid's temporary spill and a digest-less spill go, a live pid's stays", () => {
  const base = path.basename(final);
  assert.equal(deadSpillFile(`${base}.${deadPid}.17000000000001.tmp`), true);
  assert.equal(deadSpillFile(`${base}.${process.pid}.17000000000001.tmp`), false);
  assert.equal(deadSpillFile('chunk-3-270532608'), true);
  assert.equal(deadSpillFile(base), false, 'a finished spill is the cache\'s (evicted by the size limit)');
});
