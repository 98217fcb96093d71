import { open, type FileHandle } from 'node:fs/promises';
import { fsPath, oneLine } from '../format/byte-string.js';
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
  /** The first MAX_BAD regions found wrong, and where the image is too short or too long. */
  badRegions: BadRegion[];
  /** Regions found wrong past the first MAX_BAD, not listed (a report of a million wrong parts is no report). */
  moreBadRegions: number;
  /** A block device: its first `expectedSize` bytes were checked, what follows is not the image's. */
  device: boolean;
  /**
   * False for a pipe that went on past the image: it was read one byte past the image and no further (it may
   * never end), so `size` and `checksum` are of those bytes only.
   */
  readToEnd: boolean;
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
export const MAX_BAD = 20;

/**
 * The regions found wrong: the first MAX_BAD listed, the others counted. Counted too, and not only as long as the list
 * had room: past 20, `verify` stopped at them without a word, and left out where the file was too short.
 */
class BadRegions {
  readonly listed: BadRegion[] = [];
  more = 0;
  private lastOffset = -1;

  add(b: BadRegion): void {
    if (b.offset === this.lastOffset) return; // (a raw region is compared block by block: counted once)
    this.lastOffset = b.offset;
    if (this.listed.length < MAX_BAD) this.listed.push(b);
    else this.more++;
  }
}

/** Reads into `data` from the file's position on until it is full or the file ends; returns the bytes read. */
async function readFully(fh: FileHandle, data: Buffer): Promise<number> {
  let got = 0;
  for (;;) {
    const { bytesRead } = await fh.read(data, got, data.length - got, null);
    got += bytesRead;
    if (bytesRead === 0 || got === data.length) return got;
  }
}

/**
 * Checks an image file against the template: its size and whole-image checksum (like `jigdo-file
 * verify`) and, in the same pass, each region, so a wrong image says where it is wrong: raw regions are
 * compared with the template's bytes, part regions with the part's checksum.
 */
export async function verifyImage(session: ImageSession, file: string): Promise<VerifyResult> {
  const { layout, pool, raw } = session;
  const fh = await open(fsPath(file), 'r').catch((err: NodeJS.ErrnoException) => {
    throw new JigdoError(file, err.code === 'ENOENT' ? 'image not found' : `cannot read: ${errorMessage(err)}`);
  });
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw new JigdoError(file, 'is a directory, not an image file');
    // Read to the end, whatever stat says: a block device or a pipe has size 0, and a file may shrink meanwhile. A
    // device (a USB stick, a burned disc) is checked on the image's bytes at its start; anything else must end with
    // the image, as jigdo-file requires. A file is read to its end (its checksum is then the file's, as md5sum says);
    // a pipe to one byte past the image, which tells without reading on (it may never end).
    const device = st.isBlockDevice();
    const limit = device ? layout.size : st.isFile() ? Number.MAX_SAFE_INTEGER : layout.size + 1;
    const whole = pool.streamHash(layout.checksumKind);
    const bad = new BadRegions();
    let pending: Promise<unknown> = Promise.resolve();
    let regionIndex = 0;
    let partHash: ReturnType<typeof createHash> | undefined;
    const expectedRaw = Buffer.allocUnsafe(BLOCK);
    let size = 0; // bytes read
    while (size < limit) {
      const offset = size;
      const data = Buffer.allocUnsafeSlow(Math.min(BLOCK, limit - offset)); // its own memory: it is handed to the hashing worker
      const n = await readFully(fh, data);
      if (n === 0) break;
      size += n;
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
          if (!want.equals(slice)) bad.add({ offset: region.offset, length: region.length, what: 'template data differs' });
        } else {
          partHash ??= createHash(layout.checksumKind);
          partHash.update(slice);
          if (stop === regionEnd) {
            const sum = checksumKey(partHash.digest());
            partHash = undefined;
            if (sum !== region.key) {
              // The .jigdo's name for it too (Debian:pool/…/x.deb): a checksum alone tells a user nothing.
              const name = session.jigdo.parts.get(region.key)?.[0]?.uri;
              bad.add({ offset: region.offset, length: region.length, what: `part ${region.key}${name ? ` (${oneLine(name, 200)})` : ''} has checksum ${sum}`, key: region.key });
            }
          }
        }
        at = stop;
        if (stop === regionEnd) regionIndex++;
      }
      await pending;
      pending = whole.update(data.subarray(0, n), true);
      if (n < data.length) break; // the end
    }
    await pending;
    const sum = await whole.digest();
    const ok = size === layout.size && sum.equals(layout.imageSum);
    const listed = bad.listed;
    if (size < layout.size) listed.push({ offset: size, length: layout.size - size, what: 'missing (file too short)' });
    const readToEnd = size < limit || st.isFile() || device;
    if (size > layout.size && readToEnd) listed.push({ offset: layout.size, length: size - layout.size, what: 'extra bytes after the image' });
    for (const b of listed) if (b.key) b.goodCopy = await localCopyOf(session, b.key);
    const result = { ok, size, expectedSize: layout.size, checksum: sum.toString('hex'), expected: layout.imageSum.toString('hex') };
    return { ...result, badRegions: listed, moreBadRegions: bad.more, device, readToEnd };
  } finally {
    await fh.close();
  }
}
