/**
 * Issue 10 item 5: an old image that changes while in use is never served wrong. A part verified inside
 * v1.iso whose bytes are then overwritten in place is refused (looked up again, found nowhere) instead of
 * read; an image rebuilt with its files at other extents is listed again and its parts found at the new
 * places. In-process, through the engine's part store (the mount and serve read through the same store).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { UnavailableError } from '../../src/format/errors.js';
import { loadJigdo, openImage, selectImage, type ImageSession } from '../../src/engine/session.js';
import { bytesOf, xorrisoImage } from '../helpers/disc-images.js';
import { makeUpgrade, partOf as partOfV2, readPart as readPartOf, type Upgrade } from '../helpers/upgrade-fixture.js';

let work: string;
let up: Upgrade;
let image: string;
let s: ImageSession;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-disc-changes-'));
  up = await makeUpgrade(work);
  image = path.join(work, 'v1.iso');
  await xorrisoImage(up.v1, image, 'rr');
  const j = await loadJigdo(up.jigdo);
  s = await openImage(j, selectImage(j), { local: [], scan: [image], cacheDir: path.join(work, 'cache'), memory: 32 << 20, log: () => undefined });
});
after(async () => {
  await s?.close();
  await rm(work, { recursive: true, force: true });
});

const partOf = (rel: string) => partOfV2(up, s, rel);
const readPart = (key: string, length: number) => readPartOf(s, key, length);

test('a part overwritten inside the image after it was verified is refused, never served', async () => {
  const rel = 'pool/main/a/pkg0_1.0_amd64.deb';
  const { key, data } = await partOf(rel);
  assert.ok((await readPart(key, data.length)).equals(data), 'first read: from v1.iso');
  assert.equal(s.parts.counts().byProvider.image, 1);
  // Overwrite the file's bytes inside the image, in place (same size, same inode; the ctime moves).
  const whole = await readFile(image);
  const at = whole.indexOf(data.subarray(0, 4096));
  assert.ok(at > 0);
  const fh = await open(image, 'r+');
  await fh.write(bytesOf('garbage', data.length), 0, data.length, at);
  await fh.close();
  await assert.rejects(readPart(key, data.length), UnavailableError);
});

test('an image rebuilt with its files elsewhere is listed again: its parts are found at the new extents', async () => {
  await writeFile(path.join(up.v1, 'aaa-first.bin'), bytesOf('shift', 300_000));
  await xorrisoImage(up.v1, image, 'rr'); // a new file under the same name, every file moved
  const rel = 'pool/main/b/pkg1_1.0_amd64.deb';
  const { key, data } = await partOf(rel);
  assert.ok((await readPart(key, data.length)).equals(data), 'found again inside the rebuilt image');
});
