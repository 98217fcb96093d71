/**
 * A disc swapped or taken out of its drive while a mount or serve reads from it (`--scan /dev/loopN`, root only):
 * the device node keeps its inode and times, so only the medium (sysfs diskseq) and size tell. A part verified on the
 * first disc is never served from the next one: the read fails cleanly (no source left) or the part is found again
 * where the disc now in the drive holds it. In-process, through the engine's part store (the mount and serve read
 * through the same store).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { UnavailableError } from '../../src/format/errors.js';
import { loadJigdo, openImage, selectImage, type ImageSession } from '../../src/engine/session.js';
import { bytesOf, reportLba, writeAt, xorrisoImage } from '../helpers/disc-images.js';
import { attachLoop, changeLoopFile, detachAll, loopUnavailable, resizeLoop } from '../helpers/loop-device.js';
import { makeUpgrade, partOf as partOfV2, readPart as readPartOf, type Upgrade } from '../helpers/upgrade-fixture.js';

const skip = loopUnavailable();
const REL = 'pool/main/a/pkg0_1.0_amd64.deb';
let work: string;
let up: Upgrade;
let v1iso: string;
/** A copy of v1 (first in the drive), and v1 with other bytes in REL: the same size and listing. */
let disc: string;
let other: string;
let dev: string;
let s: ImageSession;
const log: string[] = [];
before(async () => {
  if (skip) return;
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-disc-device-swap-'));
  up = await makeUpgrade(work);
  v1iso = path.join(work, 'v1.iso');
  await xorrisoImage(up.v1, v1iso, 'rr');
  other = path.join(work, 'v1-other.iso');
  await copyFile(v1iso, other);
  const e = (await reportLba(other)).get(REL)!;
  await writeAt(other, e, bytesOf('garbage', e.reduce((a, x) => a + x.length, 0)));
  disc = path.join(work, 'disc.iso');
  await copyFile(v1iso, disc);
  dev = await attachLoop(disc);
  const j = await loadJigdo(up.jigdo);
  s = await openImage(j, selectImage(j), { local: [], scan: [dev], logMissing: true, cacheDir: path.join(work, 'cache'), memory: 32 << 20, log: (l) => log.push(l) });
});
after(async () => {
  await s?.close();
  await detachAll();
  if (work) await rm(work, { recursive: true, force: true });
});

const partOf = (rel: string) => partOfV2(up, s, rel);
const readPart = (key: string, length: number) => readPartOf(s, key, length);

test('a part read from the disc, then the disc swapped, taken out and put back: never the other disc\'s bytes', { skip }, async () => {
  const { key, data } = await partOf(REL);
  assert.ok((await readPart(key, data.length)).equals(data), 'first read: from the disc in the drive');
  assert.equal(s.parts.counts().byProvider.image, 1);
  const fromDisc = (): number => s.local.images.summary().find((u) => u.image === dev)?.parts ?? 0;
  assert.equal(fromDisc(), 1);
  // Another disc in the same drive while it is open (same node, same size, same listing; other bytes in this file).
  await changeLoopFile(dev, other);
  await assert.rejects(readPart(key, data.length), UnavailableError);
  assert.equal(fromDisc(), 0, 'the part the disc no longer gives is not counted as from it ("from IMAGE: N parts")');
  assert.ok(log.some((l) => l.includes(`scan: ${dev} changed (another disc, or none): listing it again`)), log.join('\n'));
  assert.ok(log.some((l) => l.includes(`part ${key}: ${dev}: the disc in it changed (swapped, ejected or resized) since it was verified: looking for it again`)), log.join('\n'));
  // A part the second disc does hold is read from it.
  const kept = await partOf('pool/main/b/pkg1_1.0_amd64.deb');
  assert.ok((await readPart(kept.key, kept.data.length)).equals(kept.data), 'a part the other disc holds');
  // The disc taken out (the device has 0 bytes): reads fail, never block or give zeros.
  await truncate(other, 0);
  await resizeLoop(dev);
  await assert.rejects(readPart(kept.key, kept.data.length), UnavailableError);
  await assert.rejects(readPart(key, data.length), UnavailableError);
  assert.ok(log.some((l) => l.includes(`scan: ${dev}: no disc in the drive (0 bytes): not scanned`)), log.join('\n'));
  // The first disc back in the drive: it is listed again, and a part not read yet is found on it (a part found missing
  // is looked for again 10 s later: MISSING_RETRY_MS).
  await copyFile(v1iso, other);
  await resizeLoop(dev);
  const fresh = await partOf('pool/main/c/pkg2_1.0_amd64.deb');
  assert.ok((await readPart(fresh.key, fresh.data.length)).equals(fresh.data), 'found on the disc put back');
  assert.equal(log.filter((l) => l.includes(`scan: ${dev}: iso9660 image`)).length, 3, log.join('\n'));
});
