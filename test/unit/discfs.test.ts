/**
 * The disc-filesystem reader (src/discfs/) on images built by xorriso, genisoimage -udf and mkudffs: every
 * file's extents equal xorriso's report_lba, and the bytes read through them equal the source files.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DiscFormatError, detectDisc, listDisc, type DiscListing } from '../../src/discfs/index.js';
import {
  LONG_NAME, bigImage, dropIsoDescriptors, extentKey, fragmentUdfFile, hasTool, imageReader, makeTree, readExtents, reportLba,
  run, sha, udfBridge, xorrisoImage,
} from '../helpers/disc-images.js';

let work: string;
let src: string;
let tree: Map<string, Buffer>;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-discfs-'));
  src = path.join(work, 'src');
  tree = await makeTree(src);
});
after(() => rm(work, { recursive: true, force: true }));

async function list(image: string, opts?: Parameters<typeof listDisc>[2]): Promise<DiscListing> {
  const r = await imageReader(image);
  try {
    return await listDisc(r.read, r.size, opts);
  } finally {
    await r.close();
  }
}

/** Every listed file: extents as the oracle says (by extent), bytes equal to the source with the same content. */
async function checkAgainstOracle(image: string, listing: DiscListing, oracle: Map<string, import('../../src/discfs/index.js').DiscExtent[]>): Promise<void> {
  const oracleKeys = new Set([...oracle.values()].map(extentKey));
  const listedKeys = new Set(listing.files.map((f) => extentKey(f.extents)));
  assert.deepEqual([...listedKeys].sort(), [...oracleKeys].sort(), 'extents = report_lba (hard link deduplicated)');
  assert.equal(listedKeys.size, listing.files.length, 'no extent list twice');
  const sources = new Set([...tree.values()].map(sha));
  for (const f of listing.files) {
    const bytes = await readExtents(image, f.extents);
    assert.equal(bytes.length, f.size);
    assert.ok(sources.has(sha(bytes)), `${f.path}: bytes equal a source file`);
  }
  assert.equal(listing.files.length, tree.size, 'one entry per distinct file (no symlink, no empty file)');
}

describe('ISO9660', () => {
  test('Rock Ridge + Joliet: Rock Ridge names, long and deep, exact paths', async () => {
    const image = path.join(work, 'rr.iso');
    await xorrisoImage(src, image, 'rr');
    const listing = await list(image);
    assert.equal(listing.kind, 'iso9660');
    assert.deepEqual(listing.warnings, []);
    await checkAgainstOracle(image, listing, await reportLba(image));
    const byPath = new Map(listing.files.map((f) => [f.path, f]));
    for (const [rel, data] of tree) {
      // The hard link and its target share one extent: whichever name the walk met first is kept.
      const name = rel === 'pool/main/b/beta_2.1_all.deb' && !byPath.has(rel) ? 'hardlink.deb' : rel;
      assert.equal(byPath.get(name)?.size, data.length, rel);
    }
    assert.ok(byPath.has(`pool/contrib/${LONG_NAME}`));
  });

  test('Joliet only: UCS-2 names without ;1', async () => {
    const image = path.join(work, 'joliet.iso');
    await xorrisoImage(src, image, 'joliet');
    const listing = await list(image);
    await checkAgainstOracle(image, listing, await reportLba(image));
    const paths = listing.files.map((f) => f.path);
    assert.ok(paths.includes('pool/main/a/alpha_1.0_amd64.deb'), paths.join(' '));
    assert.ok(paths.every((p) => !p.includes(';')));
  });

  test('plain ISO9660 (no Rock Ridge, no Joliet): 8.3 names without ;1', async () => {
    const image = path.join(work, 'plain.iso');
    await xorrisoImage(src, image, 'plain');
    const listing = await list(image);
    await checkAgainstOracle(image, listing, await reportLba(image));
    assert.ok(listing.files.some((f) => f.path === 'TINY.TXT'), listing.files.map((f) => f.path).join(' '));
  });

  test('a file over 4 GiB (multi-extent) in an image over 4 GiB', async () => {
    const { image, size, tail } = await bigImage(work);
    const listing = await list(image);
    const huge = listing.files.find((f) => f.path === 'huge.bin');
    assert.ok(huge);
    assert.equal(huge.size, size);
    const oracle = await reportLba(image);
    assert.equal(extentKey(huge.extents), extentKey(oracle.get('huge.bin')!));
    const last = listing.files.find((f) => f.path === 'zzz-after.txt')!;
    assert.ok(last.extents[0]!.offset > 2 ** 32, 'a file placed beyond 4 GiB');
    assert.equal((await readExtents(image, last.extents)).toString(), 'after the huge file\n');
    let left = tail.at;
    for (const e of huge.extents) {
      if (left < e.length) {
        const r = await imageReader(image);
        assert.ok((await r.read(e.offset + left, tail.data.length)).equals(tail.data), 'bytes across the 4 GiB mark');
        await r.close();
        break;
      }
      left -= e.length;
    }
  });
});

describe('UDF', () => {
  test('the ISO9660+UDF bridge of genisoimage -udf: the UDF tree, same extents as the ISO9660 tree', async () => {
    const image = path.join(work, 'bridge.iso');
    await udfBridge(src, image);
    const r = await imageReader(image);
    assert.equal(await detectDisc(r.read, r.size), 'udf');
    await r.close();
    const listing = await list(image);
    assert.equal(listing.kind, 'udf');
    await checkAgainstOracle(image, listing, await reportLba(image));
    const iso = await list(image, { prefer: 'iso9660' });
    assert.equal(iso.kind, 'iso9660');
    assert.deepEqual(iso.files.map((f) => extentKey(f.extents)).sort(), listing.files.map((f) => extentKey(f.extents)).sort());
  });

  test('UDF only (the bridge without its ISO9660 descriptors), and a fragmented file read through 3 extents', async () => {
    const image = path.join(work, 'udf-only.iso');
    await udfBridge(src, image);
    const oracle = await reportLba(image);
    await dropIsoDescriptors(image);
    const r = await imageReader(image);
    assert.equal(await detectDisc(r.read, r.size), 'udf');
    await r.close();
    const listing = await list(image);
    await checkAgainstOracle(image, listing, oracle);
    const alpha = listing.files.find((f) => f.path === 'pool/main/a/alpha_1.0_amd64.deb')!;
    const expected = await fragmentUdfFile(image, alpha.extents[0]!.offset, alpha.size);
    const frag = (await list(image)).files.find((f) => f.path === alpha.path)!;
    assert.deepEqual(frag.extents, expected);
    assert.ok((await readExtents(image, frag.extents)).equals(tree.get(alpha.path)!));
  });

  test('mkudffs (udftools): an empty UDF 2.01 volume is recognised and listed', async (t) => {
    if (!(await hasTool('mkudffs'))) return t.skip('mkudffs not installed (Debian package udftools; scripts/setup.sh installs it)');
    const image = path.join(work, 'mkudffs.img');
    await run('truncate', ['-s', '4M', image]);
    await run('mkudffs', ['--media-type=hd', '--blocksize=2048', '--label=EMPTYUDF', image]);
    const listing = await list(image);
    assert.deepEqual({ kind: listing.kind, volumeId: listing.volumeId, files: listing.files }, { kind: 'udf', volumeId: 'EMPTYUDF', files: [] });
  });
});

describe('bad input', () => {
  test('not a disc image, and an empty file: DiscFormatError naming the offset', async () => {
    const junk = Buffer.alloc(64 * 1024, 7);
    const read = async (o: number, l: number): Promise<Buffer> => junk.subarray(o, o + l);
    assert.equal(await detectDisc(read, junk.length), null);
    await assert.rejects(listDisc(read, junk.length), (e: unknown) => e instanceof DiscFormatError && /at byte 32768/.test(e.message));
    await assert.rejects(listDisc(read, 0), DiscFormatError);
  });
});
