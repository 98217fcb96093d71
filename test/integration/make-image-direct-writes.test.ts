/**
 * make-image writes its output with O_DIRECT (build/direct-output.ts) and goes over to buffered writes part-way when the
 * disk holds its block loop back (build/disk-wait.ts). The switch is judged on 24 blocks of 4 MiB, more than a test
 * image has, so the judge is replaced here by one that says "too slow" at its first look: the image (the ext4 fixture,
 * 16 MiB, four blocks) is then written partly direct and partly through the page cache (the direct writes of the first
 * blocks may still be in flight when the buffered ones start), and must come out byte for byte what jigdo-file built.
 * (direct-output.test.ts "stop" holds writes in flight across the switch on purpose.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeImage, type DiskWaitPolicy } from '../../src/build/make-image.js';
import { loadJigdo, openImage, selectImage } from '../../src/engine/session.js';
import { buildFixtures, type FixtureSet, type FixtureVariant } from '../helpers/fixtures.js';
import { md5hex } from '../helpers/hash.js';

let work: string;
let fx: FixtureSet;
let v: FixtureVariant;
let n = 0;

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-direct-writes-'));
  fx = await buildFixtures();
  v = fx.variants.ext4;
});
after(() => rm(work, { recursive: true, force: true }));

/** make-image of the ext4 fixture from its local parts into a new file; the result and the image's MD5. */
async function build(diskWait?: () => DiskWaitPolicy) {
  const out = path.join(work, `out-${++n}.img`);
  const j = await loadJigdo(v.jigdo);
  const s = await openImage(j, selectImage(j), {
    local: [{ label: fx.partsLabel, dir: v.partsDir }],
    scan: [],
    cacheDir: path.join(work, `cache-${n}`),
    memory: 32 << 20,
    log: () => undefined,
  });
  try {
    const r = await makeImage(s, out, undefined, undefined, { diskWait });
    return { r, md5: md5hex(await readFile(out)) };
  } finally {
    await s.close();
  }
}

test('make-image: direct writes that give way to buffered ones part-way still write the image exactly', async (t) => {
  // More blocks than make-image keeps in flight (3): the judge is first asked before the last block is written.
  assert.ok(v.imageSize > 3 * (4 << 20), `the ext4 fixture holds more than three 4 MiB blocks (${v.imageSize} bytes)`);
  const plain = await build();
  assert.deepEqual(plain.r.missing, []);
  assert.equal(plain.md5, v.imageMd5);
  if (plain.r.directBytes === 0) {
    t.skip(`${tmpdir()} takes no O_DIRECT writes: nothing to switch from`);
    return;
  }
  // Fewer blocks than the judge waits for: no switch. Every block went direct but a last one of a length O_DIRECT refuses.
  assert.equal(plain.r.directBytes, v.imageSize % 4096 === 0 ? v.imageSize : v.imageSize - (v.imageSize % (4 << 20)));

  let looks = 0;
  const switched = await build(() => ({
    add: () => undefined,
    get tooSlow() {
      looks++;
      return true;
    },
  }));
  assert.deepEqual(switched.r.missing, []);
  assert.ok(looks >= 1, 'the loop asked the judge once a direct write was waited for');
  assert.ok(switched.r.directBytes > 0 && switched.r.directBytes < v.imageSize, `part direct, part buffered (${switched.r.directBytes} of ${v.imageSize} bytes direct)`);
  assert.equal(switched.md5, v.imageMd5);
});
