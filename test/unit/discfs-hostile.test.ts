/**
 * The disc-filesystem reader on hostile images: truncated, a directory that loops back to the root, absurd
 * extents, too many entries, flipped bytes. Never a crash or a hang, never an extent outside the image: a
 * DiscFormatError, or a listing with warnings whose files still read right.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DiscFormatError, listDisc, type DiscListing } from '../../src/discfs/index.js';
import { bytesOf, makeTree, sha, udfBridge, xorrisoImage } from '../helpers/disc-images.js';

let work: string;
let sources: Set<string>;
let rr: Buffer;
let plain: Buffer;
let bridge: Buffer;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-discfs-hostile-'));
  const tree = await makeTree(path.join(work, 'src'));
  sources = new Set([...tree.values()].map(sha));
  await xorrisoImage(path.join(work, 'src'), path.join(work, 'rr.iso'), 'rr');
  await xorrisoImage(path.join(work, 'src'), path.join(work, 'plain.iso'), 'plain');
  await udfBridge(path.join(work, 'src'), path.join(work, 'bridge.iso'));
  rr = await readFile(path.join(work, 'rr.iso'));
  plain = await readFile(path.join(work, 'plain.iso'));
  bridge = await readFile(path.join(work, 'bridge.iso'));
});
after(() => rm(work, { recursive: true, force: true }));

const reader = (img: Buffer) => async (o: number, l: number): Promise<Buffer> => img.subarray(o, o + l);

/** Lists `img`; a DiscFormatError is fine, anything else fails; every listed file lies inside and reads right. */
async function listOrClean(img: Buffer, opts?: Parameters<typeof listDisc>[2]): Promise<DiscListing | DiscFormatError> {
  try {
    const listing = await listDisc(reader(img), img.length, opts);
    for (const f of listing.files) {
      const bytes = Buffer.concat(f.extents.map((e) => img.subarray(e.offset, e.offset + e.length)));
      assert.equal(bytes.length, f.size, `${f.path} lies inside the image`);
    }
    return listing;
  } catch (err) {
    if (err instanceof DiscFormatError) return err;
    throw err;
  }
}

/** Offsets of the directory records (ISO9660) whose extent starts at block `lba` (both-endian fields agree). */
function recordsAt(img: Buffer, lba: number): number[] {
  const out: number[] = [];
  for (let p = 16 * 2048; p + 34 < Math.min(img.length, 200 * 2048); p++) {
    if (img[p]! >= 34 && img.readUInt32LE(p + 2) === lba && img.readUInt32BE(p + 6) === lba && img[p + 32]! > 1) out.push(p);
  }
  return out;
}

test('a truncated image: what is left is listed, nothing beyond the end', async () => {
  for (const img of [rr, plain, bridge]) {
    for (const keep of [40_000, 100_000, 200_000, 300_000, img.length - 2048]) {
      const result = await listOrClean(img.subarray(0, keep));
      if (result instanceof DiscFormatError) continue;
      for (const f of result.files) assert.ok(sources.has(sha(Buffer.concat(f.extents.map((e) => img.subarray(e.offset, e.offset + e.length))))));
    }
  }
});

test('a directory whose record points back at the root: a warning, no loop', async () => {
  const img = Buffer.from(plain);
  const root = img.readUInt32LE(16 * 2048 + 156 + 2);
  const rootDir = img.subarray(root * 2048, root * 2048 + 2048);
  let patched = 0;
  for (let p = 0; p < 2048 && rootDir[p]! > 0; p += rootDir[p]!) {
    if (rootDir[p + 25]! & 2 && rootDir[p + 32]! === 4 && rootDir.toString('latin1', p + 33, p + 37) === 'POOL') {
      rootDir.writeUInt32LE(root, p + 2);
      rootDir.writeUInt32BE(root, p + 6);
      patched++;
    }
  }
  assert.equal(patched, 1);
  const listing = await listOrClean(img);
  assert.ok(!(listing instanceof DiscFormatError));
  assert.ok(listing.warnings.some((w) => /POOL\/: skipped: directory loop/.test(w)), listing.warnings.join('\n'));
  assert.ok(listing.files.every((f) => !f.path.startsWith('POOL/')));
});

test('absurd extents (beyond the image, past 2^32 blocks) are skipped with a warning', async () => {
  const img = Buffer.from(rr);
  const listing = (await listOrClean(img)) as DiscListing;
  const alpha = listing.files.find((f) => f.path.endsWith('alpha_1.0_amd64.deb'))!;
  const records = recordsAt(img, alpha.extents[0]!.offset / 2048);
  assert.ok(records.length >= 1);
  for (const p of records) {
    img.writeUInt32LE(0xfffffff0, p + 2);
    img.writeUInt32BE(0xfffffff0, p + 6);
  }
  const after = (await listOrClean(img)) as DiscListing;
  assert.ok(!after.files.some((f) => f.path.endsWith('alpha_1.0_amd64.deb')));
  assert.ok(after.warnings.some((w) => /alpha_1\.0_amd64\.deb: skipped: extent .* lies outside the image/.test(w)), after.warnings.join('\n'));
  assert.equal(after.files.length, listing.files.length - 1);
});

test('a root directory of size 0 (found by the fuzzer): a listing or a DiscFormatError, not a RangeError', async () => {
  for (const img0 of [rr, plain]) {
    const img = Buffer.from(img0);
    img.writeUInt32LE(0, 16 * 2048 + 156 + 10); // the PVD's root record: data length, both byte orders
    img.writeUInt32BE(0, 16 * 2048 + 156 + 14);
    await listOrClean(img);
  }
});

test('more entries than maxEntries: a DiscFormatError', async () => {
  for (const img of [rr, bridge]) {
    const result = await listOrClean(img, { maxEntries: 3 });
    assert.ok(result instanceof DiscFormatError && /more than 3 directory entries/.test(result.message), String(result));
  }
});

test('flipped bytes in the descriptors and directories: a listing or a DiscFormatError, never a crash', async () => {
  const noise = bytesOf('flips', 4 * 600);
  for (const img of [rr, plain, bridge]) {
    for (let i = 0; i < 200; i++) {
      const copy = Buffer.from(img);
      for (let k = 0; k < 3; k++) {
        const at = 16 * 2048 + (noise.readUInt32LE((i * 3 + k) * 4 % (noise.length - 4)) % (300 * 2048));
        if (at < copy.length) copy[at] = noise[(i + k) % noise.length]!;
      }
      await listOrClean(copy);
    }
  }
});
