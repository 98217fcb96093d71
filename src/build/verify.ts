import { open } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { checksumKey } from '../format/checksum.js';
import { JigdoError, errorMessage } from '../format/errors.js';
import type { ImageSession } from '../engine/session.js';
import type { Region } from '../image/layout.js';

export interface BadRegion {
  offset: number;
  length: number;
  what: string;
  /** A wrong part region: the part's key. */
  key?: string;
  /**
   * Where a verified copy of that part is on this machine (a `--local`/`--scan` file, or an old disc image
   * given to --scan that holds it), so the report says what can repair the image without a download.
   */
  goodCopy?: { path: string; insideImage: boolean };
}

export interface VerifyResult {
  ok: boolean;
  size: number;
  expectedSize: number;
  checksum: string;
  expected: string;
  badRegions: BadRegion[];
}

const BLOCK = 8 << 20;

/**
 * A verified copy of a part among the local sources (named files and --scan folders first, then inside old disc
 * images), hashed if need be; nothing from the cache or the network: the report says what is at hand.
 */
async function localCopyOf(session: ImageSession, key: string): Promise<BadRegion['goodCopy']> {
  const { local } = session;
  const file = await local.find(key).catch(() => undefined);
  if (file) return { path: file.path, insideImage: false };
  const inImage = await local.findInImages(key).catch(() => undefined);
  return inImage ? { path: inImage.path, insideImage: true } : undefined;
}
const MAX_BAD = 20;

/**
 * Checks an image file against the template: its size and whole-image checksum (like `jigdo-file
 * verify`) and, in the same pass, each region, so a wrong image says where it is wrong: raw regions are
 * compared with the template's bytes, part regions with the part's checksum.
 */
export async function verifyImage(session: ImageSession, file: string): Promise<VerifyResult> {
  const { layout, pool, raw } = session;
  const fh = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new JigdoError(file, err.code === 'ENOENT' ? 'image not found' : `cannot read: ${errorMessage(err)}`);
  });
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw new JigdoError(file, 'is a directory, not an image file');
    const size = st.size;
    const whole = pool.streamHash(layout.checksumKind);
    const bad: BadRegion[] = [];
    let pending: Promise<unknown> = Promise.resolve();
    let regionIndex = 0;
    let partHash: ReturnType<typeof createHash> | undefined;
    const expectedRaw = Buffer.allocUnsafe(BLOCK);
    for (let offset = 0; offset < size; offset += BLOCK) {
      const n = Math.min(BLOCK, size - offset);
      const data = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) got += (await fh.read(data, got, n - got, offset + got)).bytesRead;
      // Per-region checks on the part of this block that lies inside the image.
      let at = offset;
      const end = Math.min(offset + n, layout.size);
      while (at < end && regionIndex < layout.regions.length) {
        const region: Region = layout.regions[regionIndex]!;
        const regionEnd = region.offset + region.length;
        const stop = Math.min(end, regionEnd);
        const slice = data.subarray(at - offset, stop - offset);
        if (region.kind === 'raw') {
          const want = expectedRaw.subarray(0, slice.length);
          await raw.readInto(region.rawOffset + (at - region.offset), slice.length, want, 0);
          if (!want.equals(slice) && bad.length < MAX_BAD && bad[bad.length - 1]?.offset !== region.offset) {
            bad.push({ offset: region.offset, length: region.length, what: 'template data differs' });
          }
        } else {
          partHash ??= createHash(layout.checksumKind);
          partHash.update(slice);
          if (stop === regionEnd) {
            const sum = checksumKey(partHash.digest());
            partHash = undefined;
            if (sum !== region.key && bad.length < MAX_BAD) {
              bad.push({ offset: region.offset, length: region.length, what: `part ${region.key} has checksum ${sum}`, key: region.key });
            }
          }
        }
        at = stop;
        if (stop === regionEnd) regionIndex++;
      }
      await pending;
      pending = whole.update(data, true);
    }
    await pending;
    const sum = await whole.digest();
    const ok = size === layout.size && sum.equals(layout.imageSum);
    if (size < layout.size && bad.length < MAX_BAD) bad.push({ offset: size, length: layout.size - size, what: 'missing (file too short)' });
    if (size > layout.size) bad.push({ offset: layout.size, length: size - layout.size, what: 'extra bytes after the image' });
    for (const b of bad) if (b.key) b.goodCopy = await localCopyOf(session, b.key);
    return { ok, size, expectedSize: layout.size, checksum: sum.toString('hex'), expected: layout.imageSum.toString('hex'), badRegions: bad };
  } finally {
    await fh.close();
  }
}
