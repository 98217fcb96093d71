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

/**
 * A UDF image of `files` file entries (all named "a"), each claiming 65,536 blocks through an allocation extent
 * descriptor that lists 252 one-block extents alternating between two blocks (none merge), then chains back to itself:
 * every file reaches MAX_FILE_EXTENTS from one 2 KiB block. (After the one a helper session wrote to show the crash.)
 */
function extentBomb(files: number, oneEntry = false): Buffer {
  const BS = 2048;
  const PSTART = 300;
  const img = Buffer.alloc((PSTART + 20 + files + 10 + Math.floor((files * 40) / BS) + 2) * BS);
  const tag = (b: Buffer, ident: number, loc: number): void => {
    b.writeUInt16LE(ident, 0);
    b.writeUInt16LE(2, 2);
    b.writeUInt32LE(loc, 12);
    let sum = 0;
    for (let i = 0; i < 16; i++) if (i !== 4) sum += b[i]!;
    b[4] = sum & 0xff;
  };
  const put = (block: number, b: Buffer): void => void b.copy(img, block * BS);
  ['BEA01', 'NSR02', 'TEA01'].forEach((id, i) => {
    const d = Buffer.alloc(BS);
    d.write(id, 1, 'latin1');
    d[6] = 1;
    put(16 + i, d);
  });
  const anchor = Buffer.alloc(512);
  [4 * BS, 32, 4 * BS, 40].forEach((v, i) => anchor.writeUInt32LE(v, 16 + 4 * i));
  tag(anchor, 2, 256);
  put(256, anchor);
  const pd = Buffer.alloc(BS);
  pd.writeUInt32LE(PSTART, 188);
  pd.writeUInt32LE(files + 100, 192);
  tag(pd, 5, 32);
  put(32, pd);
  const lvd = Buffer.alloc(BS);
  lvd.writeUInt32LE(BS, 212);
  lvd.writeUInt32LE(BS, 248);
  lvd.writeUInt32LE(6, 264);
  lvd.writeUInt32LE(1, 268);
  lvd[440] = 1;
  lvd[441] = 6;
  lvd.writeUInt16LE(1, 442);
  tag(lvd, 6, 33);
  put(33, lvd);
  const term = Buffer.alloc(BS);
  tag(term, 8, 34);
  put(34, term);
  const fsd = Buffer.alloc(BS);
  fsd.writeUInt32LE(BS, 400);
  fsd.writeUInt32LE(1, 404);
  tag(fsd, 256, 0);
  put(PSTART, fsd);
  const fids = Buffer.alloc(40 * files);
  for (let i = 0; i < files; i++) {
    const f = fids.subarray(40 * i, 40 * i + 40);
    f[19] = 2;
    f.writeUInt32LE(BS, 20);
    f.writeUInt32LE(oneEntry ? 10 : 10 + i, 24);
    f[38] = 8;
    f[39] = 'a'.charCodeAt(0);
    tag(f, 257, 0);
  }
  const dirBlock = 10 + files + 2;
  fids.copy(img, (PSTART + dirBlock) * BS);
  const entry = (loc: number, type: number, size: number, ads: Buffer): Buffer => {
    const b = Buffer.alloc(BS);
    b[27] = type;
    b.writeUInt32LE(size % 2 ** 32, 56);
    b.writeUInt32LE(Math.floor(size / 2 ** 32), 60);
    b.writeUInt32LE(ads.length, 172);
    ads.copy(b, 176);
    tag(b, 261, loc);
    return b;
  };
  const ad = (length: number, block: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(length, 0);
    b.writeUInt32LE(block, 4);
    return b;
  };
  put(PSTART + 1, entry(1, 4, fids.length, ad(fids.length, dirBlock)));
  const AED = 8;
  const chain = Buffer.concat([...Array.from({ length: 252 }, (_, k) => ad(BS, k % 2 === 0 ? 4 : 6)), ad(((3 << 30) >>> 0) + BS, AED)]);
  const aed = Buffer.alloc(BS);
  aed.writeUInt32LE(chain.length, 20);
  chain.copy(aed, 24);
  tag(aed, 258, AED);
  put(PSTART + AED, aed);
  for (let i = 0; i < files; i++) put(PSTART + 10 + i, entry(10 + i, 5, 65536 * BS, Buffer.concat([ad(BS, 10 + i), ad(((3 << 30) >>> 0) + BS, AED)])));
  return img;
}

test('a UDF image whose files each claim 65,536 extents through one looping block: bounded in all (it ran the process out of memory)', async () => {
  const img = extentBomb(8);
  // A budget of 200,000 extents is reached at the fourth file (the default, 2^20, at the seventeenth).
  const result = await listOrClean(img, { maxExtents: 200_000 });
  assert.ok(result instanceof DiscFormatError && /more than 200000 extents in all/.test(result.message), String(result));
  // Under the budget, what the image claims is listed as it is (each file inside the image: listOrClean checks).
  const small = await listOrClean(extentBomb(2), { maxExtents: 200_000 });
  assert.ok(!(small instanceof DiscFormatError), String(small));
  // Names of one file entry (hard links): the entry is read once, not once per name (each walked its extents again
  // and spent the budgets: the listing ended at the fourth name).
  const links = await listOrClean(extentBomb(64, true), { maxExtents: 200_000 });
  assert.ok(!(links instanceof DiscFormatError), String(links));
  assert.equal(links.files.length, 1);
});

/** An ISO9660 directory record at `at` of `buf` (one-byte name, optional system use area); returns its length. */
function isoRecord(buf: Buffer, at: number, lba: number, size: number, dir: boolean, name: number, su = Buffer.alloc(0)): number {
  const len = 34 + su.length;
  buf[at] = len;
  buf.writeUInt32LE(lba, at + 2);
  buf.writeUInt32LE(size, at + 10);
  buf[at + 25] = dir ? 2 : 0;
  buf[at + 32] = 1;
  buf[at + 33] = name;
  su.copy(buf, at + 34);
  return len;
}

/** A bare ISO9660 image of `sectors` 2 KiB sectors: a primary descriptor whose root is `rootSectors` at `rootLba`. */
function bareIso(sectors: number, rootLba: number, rootSectors: number, extra = 0): Buffer {
  const img = Buffer.alloc(sectors * 2048 + extra);
  const pvd = img.subarray(16 * 2048, 17 * 2048);
  pvd[0] = 1;
  pvd.write('CD001', 1, 'latin1');
  pvd[6] = 1;
  pvd.writeUInt16LE(2048, 128);
  isoRecord(pvd, 156, rootLba, rootSectors * 2048, true, 0);
  img[17 * 2048] = 255;
  img.write('CD001', 17 * 2048 + 1, 'latin1');
  img[17 * 2048 + 6] = 1;
  return img;
}

/** Lists `img` counting the bytes read: the listing's result, and that count. */
async function listCounting(img: Buffer): Promise<{ result: DiscListing | DiscFormatError; read: number }> {
  let read = 0;
  const counting = async (o: number, l: number): Promise<Buffer> => {
    read += l;
    return img.subarray(o, o + l);
  };
  try {
    return { result: await listDisc(counting, img.length), read };
  } catch (err) {
    if (err instanceof DiscFormatError) return { result: err, read };
    throw err;
  }
}

test('structures that make a listing read the same bytes again and again end it once it has read the image and 64 MiB (found by fuzzing)', async () => {
  // (1) Every record's Rock Ridge CE leads to a 64 KiB area that continues into itself: 32 hops of 64 KiB per record,
  // 2 MiB each, a 125 KB image took 10 s, and a 1 MB directory would take minutes.
  const ceBlock = 20;
  const rootLba = ceBlock + 32;
  const rootSectors = 4;
  const loop = bareIso(rootLba + rootSectors + 1, rootLba, rootSectors);
  const ce = Buffer.alloc(28);
  ce.write('CE', 0, 'latin1');
  ce[2] = 28;
  ce[3] = 1;
  ce.writeUInt32LE(ceBlock, 4);
  ce.writeUInt32LE(65536, 20);
  ce.copy(loop, ceBlock * 2048);
  for (let p = ceBlock * 2048 + 28; p + 4 <= ceBlock * 2048 + 65536; p += 4) loop.write('PD\x04\x01', p, 'latin1');
  const sp = Buffer.from([0x53, 0x50, 7, 1, 0xbe, 0xef, 0]);
  let records = 0;
  for (let s = 0; s < rootSectors; s++) {
    const sector = loop.subarray((rootLba + s) * 2048, (rootLba + s + 1) * 2048);
    let at = s === 0 ? isoRecord(sector, 0, rootLba, rootSectors * 2048, true, 0, sp) : 0;
    for (; at + 62 <= 2048; records++) at += isoRecord(sector, at, rootLba + rootSectors, 1, false, 0x41 + (records % 26), ce);
  }
  // (2) A root of subdirectories each declared 64 MiB long over the same zeros: each was read whole.
  const dirs = 4;
  const overlap = bareIso(21 + dirs, 20, 1, 64 << 20);
  for (let k = 0, at = isoRecord(overlap, 20 * 2048, 20, 2048, true, 0); k < dirs; k++) at += isoRecord(overlap, 20 * 2048 + at, 21 + k, 64 << 20, true, 0x41 + k);

  for (const [what, img, unbounded] of [['CE loops', loop, records * 2 * 2 ** 20], ['overlapping directories', overlap, dirs * 2 ** 26]] as const) {
    const { result, read } = await listCounting(img);
    assert.ok(unbounded > img.length + 2 ** 26 * 1.5, `${what}: the image reads far more than the budget without it`);
    assert.ok(read <= img.length + 2 ** 26 + 65536, `${what}: read ${read} bytes for an image of ${img.length}`);
    assert.ok(result instanceof DiscFormatError && /more than \d+ bytes of metadata read/.test(result.message), `${what}: ${String(result)}`);
  }
});
