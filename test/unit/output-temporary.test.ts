/**
 * A temporary file beside an output (src/util/output-temporary.ts: make-image's image, make-template's .template and .jigdo): its name says which process of which host writes it,
 * and a new run removes only the ones killed runs of this host left beside the same output.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { withoutTemporary } from '../../src/build/make-image.js';
import { removeDeadTemporaries, temporaryPath } from '../../src/util/output-temporary.js';
import { JigdoError } from '../../src/format/errors.js';
import { fsPath } from '../../src/format/byte-string.js';
import { ownerTag } from '../../src/util/pid.js';

let work: string;
/** A pid that ran on this host and has ended (and was reaped). */
let deadPid: number;

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-temporary-image-'));
  deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
});
after(() => rm(work, { recursive: true, force: true }));

test('the temporary image is named after this process and host, beside the output', () => {
  const out = path.join(work, 'a.iso');
  assert.equal(temporaryPath(out), path.join(work, `a.iso.jigdofs-${ownerTag()}.tmp`));
});

test('a new run removes the temporary images of dead processes of this host, and nothing else', async () => {
  const dir = await mkdtemp(path.join(work, 'd-'));
  const out = path.join(dir, 'debian.iso');
  const ours = ownerTag(deadPid);
  const otherHost = (ours[0] === 'a' ? 'b' : 'a') + ours.slice(1);
  const files = {
    dead: `debian.iso.jigdofs-${ours}.tmp`,
    live: `debian.iso.jigdofs-${ownerTag()}.tmp`, // a run still writing (this process stands in for it)
    otherHost: `debian.iso.jigdofs-${otherHost}.tmp`, // a host sharing the folder: its pids mean nothing here
    otherOutput: `debian2.iso.jigdofs-${ours}.tmp`,
    oldStyle: `debian.iso.jigdofs-${deadPid}.tmp`, // no host tag: not ours to judge
    longer: `debian.iso.jigdofs-${ours}-x.tmp`, // more than the owner tag: not a name we give
    output: 'debian.iso',
  };
  for (const name of Object.values(files)) await writeFile(path.join(dir, name), 'x');
  const removed = await removeDeadTemporaries(out);
  assert.deepEqual(removed, [path.join(dir, files.dead)]);
  const left = (await readdir(dir)).sort();
  assert.deepEqual(left, Object.values(files).filter((f) => f !== files.dead).sort());
});

test('an output name that is not UTF-8: its dead temporary image is found and removed', async () => {
  const dir = await mkdtemp(path.join(work, 'b-'));
  const out = path.join(dir, 'M\udcfcller.iso'); // the byte 0xFC, as byte-string.ts escapes it
  const tmp = `${out}.jigdofs-${ownerTag(deadPid)}.tmp`;
  await writeFile(fsPath(tmp), 'x');
  assert.deepEqual(await removeDeadTemporaries(out), [tmp]);
  assert.deepEqual(await readdir(dir), []);
});

test('a folder that cannot be listed: nothing removed, no error', async () => {
  assert.deepEqual(await removeDeadTemporaries(path.join(work, 'no-such-dir', 'x.iso')), []);
});

test('an output name too long to take the temporary suffix gets a hidden hashed temporary name, found again by the next run', async () => {
  const dir = await mkdtemp(path.join(work, 'long-'));
  const out = path.join(dir, `${'x'.repeat(240)}.iso`); // 244 bytes: legal, but not with ".jigdofs-HOSTTAG-PID.tmp"
  const tmp = temporaryPath(out);
  assert.equal(path.dirname(tmp), dir);
  assert.ok(Buffer.byteLength(path.basename(tmp)) <= 255, path.basename(tmp));
  assert.match(path.basename(tmp), new RegExp(`^\\.[0-9a-f]{16}\\.jigdofs-${ownerTag()}\\.tmp$`));
  await writeFile(tmp, 'unfinished');
  const dead = path.join(dir, path.basename(tmp).replace(ownerTag(), ownerTag(deadPid)));
  await writeFile(dead, 'killed');
  assert.deepEqual(await removeDeadTemporaries(out), [dead]);
  assert.deepEqual((await readdir(dir)).sort(), [path.basename(tmp)]);
});

test('a temporary image that cannot be removed after a failure is named in the same error, of the same class', async () => {
  class Wrong extends JigdoError {} // as make-image's WrongImageError: its class decides that the parts are hashed again
  const tmp = path.join(work, 'stuck.iso.tmp');
  await mkdir(tmp); // unlink(2) of a folder fails (EISDIR): a file that stays
  const err = new Wrong(path.join(work, 'stuck.iso'), 'the rebuilt image is wrong');
  const out = await withoutTemporary(err, tmp, path.join(work, 'stuck.iso'));
  assert.equal(out, err, 'the same error');
  assert.match((out as Error).message, /stuck\.iso: the rebuilt image is wrong; its temporary file .*stuck\.iso\.tmp is left \(EISDIR\): remove it by hand$/);
  const gone = path.join(work, 'gone.iso.tmp');
  await writeFile(gone, 'x');
  const plain = new Error('cannot write');
  assert.equal(await withoutTemporary(plain, gone, path.join(work, 'gone.iso')), plain);
  assert.equal(plain.message, 'cannot write', 'removed: nothing to add');
});
