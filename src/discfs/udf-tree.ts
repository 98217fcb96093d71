import { capReached, MAX_DIRECTORY_BYTES, MAX_FILE_EXTENTS, plainName, type ListingContext } from './context.js';
import { DiscFormatError, type DiscExtent } from './types.js';
import { TAG_FSD, blockOffset, isTag, readUdfVolume, udfString, type LbAddr, type UdfVolume } from './udf-volume.js';

/** UDF: File Entries, allocation descriptors and File Identifier Descriptors, walked from the FSD's root. */

const TAG_FID = 257;
const TAG_AED = 258;
const TAG_FE = 261;
const TAG_EFE = 266;
const FILE_TYPE_FILE = 5;
const AD_INLINE = 3;
const MAX_AED_HOPS = 1024;
const CHAR_DIR = 0x02;
const CHAR_DELETED = 0x04;
const CHAR_PARENT = 0x08;

interface Entry {
  icb: LbAddr;
  fileType: number;
  size: number;
  adType: number;
  ads: Buffer;
}

/** A File Entry or Extended File Entry at `icb`. */
async function readEntry(ctx: ListingContext, vol: UdfVolume, icb: LbAddr, what: string): Promise<Entry> {
  const offset = blockOffset(vol, icb, what);
  const b = await ctx.bytes(offset, vol.blockSize, what);
  const extended = isTag(b, TAG_EFE, icb.block);
  if (!extended && !isTag(b, TAG_FE, icb.block)) throw new DiscFormatError(`${what}: no valid UDF file entry`, offset);
  const hi = b.readUInt32LE(60);
  if (hi >= 1 << 21) throw new DiscFormatError(`${what}: absurd file size`, offset + 56);
  const [eaAt, start] = extended ? [208, 216] : [168, 176];
  const lea = b.readUInt32LE(eaAt);
  const lad = b.readUInt32LE(eaAt + 4);
  if (start + lea + lad > b.length) throw new DiscFormatError(`${what}: extended attributes and allocation descriptors overflow the entry`, offset);
  return {
    icb,
    fileType: b[16 + 11]!,
    size: hi * 2 ** 32 + b.readUInt32LE(56),
    adType: b.readUInt16LE(16 + 18) & 7,
    ads: b.subarray(start + lea, start + lea + lad),
  };
}

const AD_SIZES = [8, 16, 20];

/** The extents of an entry's data, following allocation extent descriptors; a string says why there are none. */
async function extentsOf(ctx: ListingContext, vol: UdfVolume, e: Entry, what: string): Promise<DiscExtent[] | string> {
  const adSize = AD_SIZES[e.adType];
  if (adSize === undefined) return `allocation descriptor type ${e.adType}`;
  const out: DiscExtent[] = [];
  let total = 0;
  let ads = e.ads;
  for (let hops = 0, p = 0; p + adSize <= ads.length && total < e.size; ) {
    const raw = ads.readUInt32LE(p);
    const [kind, length] = [raw >>> 30, raw & 0x3fffffff];
    if (length === 0) break;
    const at = e.adType === 2 ? 12 : 4;
    const addr = { block: ads.readUInt32LE(p + at), partRef: e.adType === 0 ? e.icb.partRef : ads.readUInt16LE(p + at + 4) };
    if (kind === 3) {
      if (++hops > MAX_AED_HOPS) return 'too many allocation extent descriptors';
      const b = await ctx.bytes(blockOffset(vol, addr, what), vol.blockSize, what);
      if (!isTag(b, TAG_AED, addr.block)) return 'bad allocation extent descriptor';
      ads = b.subarray(24, Math.min(b.length, 24 + b.readUInt32LE(20)));
      p = 0;
      continue;
    }
    if (kind !== 0) return 'holes (unrecorded extents)';
    if (out.length >= MAX_FILE_EXTENTS) return 'too many extents';
    ctx.countExtent(blockOffset(vol, addr, what));
    const keep = Math.min(length, e.size - total);
    out.push({ offset: blockOffset(vol, addr, what), length: keep });
    total += keep;
    p += adSize;
  }
  return out;
}

/** A directory's bytes: inline in its entry, or its extents read and joined (bounded). */
async function directoryData(ctx: ListingContext, vol: UdfVolume, e: Entry, what: string): Promise<Buffer> {
  if (e.adType === AD_INLINE) return e.ads.subarray(0, Math.min(e.size, e.ads.length));
  if (e.size > MAX_DIRECTORY_BYTES) throw new DiscFormatError(`${what}: directory of ${e.size} bytes`);
  const extents = await extentsOf(ctx, vol, e, what);
  if (typeof extents === 'string') throw new DiscFormatError(`${what}: ${extents}`);
  const parts: Buffer[] = [];
  for (const x of extents) parts.push(await ctx.bytes(x.offset, x.length, what));
  return Buffer.concat(parts);
}

interface Dir {
  icb: LbAddr;
  path: string;
  depth: number;
}

interface Fid {
  chars: number;
  icb: LbAddr;
  name: string;
  next: number;
}

function parseFid(d: Buffer, p: number): Fid | undefined {
  if (p + 38 > d.length || !isTag(d, TAG_FID, undefined, p)) return undefined;
  const lfi = d[p + 19]!;
  const liu = d.readUInt16LE(p + 36);
  const end = p + 38 + liu + lfi;
  if (end > d.length) return undefined;
  const name = lfi === 0 ? '' : udfString(d.subarray(p + 38 + liu, end));
  return { chars: d[p + 18]!, icb: { block: d.readUInt32LE(p + 24), partRef: d.readUInt16LE(p + 28) }, name, next: p + ((38 + liu + lfi + 3) & ~3) };
}

class UdfWalk {
  private readonly visited = new Set<string>();
  /** File entries read: another name of one (a hard link) is passed over, as addFile would drop its extents anyway. */
  private readonly entries = new Set<string>();
  private readonly queue: Dir[] = [];

  constructor(
    private readonly ctx: ListingContext,
    private readonly vol: UdfVolume,
  ) {}

  async walk(root: LbAddr): Promise<void> {
    this.visited.add(`${root.partRef}:${root.block}`);
    await this.directory({ icb: root, path: '', depth: 0 });
    await this.ctx.drain(this.queue, (dir) => this.directory(dir));
  }

  private async directory(dir: Dir): Promise<void> {
    const what = `directory ${dir.path || '/'}`;
    const entry = await readEntry(this.ctx, this.vol, dir.icb, what);
    const data = await directoryData(this.ctx, this.vol, entry, what);
    for (let p = 0; p < data.length; ) {
      const fid = parseFid(data, p);
      if (fid === undefined) {
        if (data.subarray(p).some((b) => b !== 0)) this.ctx.warn(`${what}: malformed file identifier at byte ${p} of the directory: rest skipped`);
        return;
      }
      this.ctx.countEntry(blockOffset(this.vol, dir.icb, what));
      p = fid.next;
      if (fid.chars & (CHAR_DELETED | CHAR_PARENT)) continue;
      if (!plainName(fid.name)) {
        this.ctx.warn(`${what}: entry with the unusable name "${fid.name}" skipped`);
        continue;
      }
      const path = dir.path === '' ? fid.name : `${dir.path}/${fid.name}`;
      if (fid.chars & CHAR_DIR) this.subdirectory(dir, { icb: fid.icb, path, depth: dir.depth + 1 });
      else await this.file(path, fid.icb);
    }
  }

  private async file(path: string, icb: LbAddr): Promise<void> {
    const key = `${icb.partRef}:${icb.block}`;
    if (this.entries.has(key)) return; // (each read again cost the listing's byte budget: thousands of links ended it)
    this.entries.add(key);
    let entry: Entry;
    try {
      entry = await readEntry(this.ctx, this.vol, icb, path);
    } catch (err) {
      if (!(err instanceof DiscFormatError) || capReached(err)) throw err;
      this.ctx.warn(`${path}: skipped: ${err.message}`);
      return;
    }
    if (entry.fileType !== FILE_TYPE_FILE || entry.adType === AD_INLINE || entry.size === 0) return;
    const extents = await extentsOf(this.ctx, this.vol, entry, path).catch((err: unknown) => {
      if (err instanceof DiscFormatError && !capReached(err)) return err.message; // a budget ends the listing
      throw err;
    });
    if (typeof extents === 'string') this.ctx.warn(`${path}: skipped: ${extents}`);
    else this.ctx.addFile(path, entry.size, extents);
  }

  private subdirectory(parent: Dir, child: Dir): void {
    const key = `${child.icb.partRef}:${child.icb.block}`;
    if (child.depth > this.ctx.maxDepth) this.ctx.warn(`${child.path}/: skipped: deeper than ${this.ctx.maxDepth} levels`);
    else if (this.visited.has(key)) this.ctx.warn(`${child.path}/: skipped: directory loop (entry ${key} seen before, in ${parent.path || '/'})`);
    else {
      this.visited.add(key);
      this.queue.push(child);
    }
  }
}

/** Lists the files of a UDF volume into `ctx`; returns the volume identifier. */
export async function listUdf(ctx: ListingContext): Promise<string> {
  const vol = await readUdfVolume(ctx);
  const at = blockOffset(vol, vol.fsd, 'UDF file set descriptor');
  const fsd = await ctx.bytes(at, vol.blockSize, 'UDF file set descriptor');
  if (!isTag(fsd, TAG_FSD, vol.fsd.block)) throw new DiscFormatError('no valid UDF file set descriptor', at);
  await new UdfWalk(ctx, vol).walk({ block: fsd.readUInt32LE(400 + 4), partRef: fsd.readUInt16LE(400 + 8) });
  return vol.volumeId;
}

