import type { ListingContext } from './context.js';
import { DiscFormatError } from './types.js';

/** UDF (ECMA-167 / OSTA UDF 1.02-2.01): the anchor, the volume descriptor sequence, partitions, the FSD. */

export const TAG_ANCHOR = 2;
const TAG_PRIMARY = 1;
const TAG_PARTITION = 5;
const TAG_LOGICAL_VOLUME = 6;
const TAG_TERMINATING = 8;
export const TAG_FSD = 256;
const BLOCK_SIZES = [2048, 512, 1024, 4096];
const MAX_VDS_BYTES = 256 * 1024;

/** A location inside a partition (lb_addr): logical block number and the index of the partition map. */
export interface LbAddr {
  block: number;
  partRef: number;
}

export interface UdfVolume {
  blockSize: number;
  /** Partition map index → first physical block and length in blocks. */
  partitions: Map<number, { start: number; length: number }>;
  fsd: LbAddr;
  volumeId: string;
}

/** True when `buf[at..]` holds a descriptor tag with this id and a right checksum (and location, if given). */
export function isTag(buf: Buffer, id: number, location?: number, at = 0): boolean {
  if (buf.length < at + 16 || buf.readUInt16LE(at) !== id) return false;
  let sum = 0;
  for (let i = 0; i < 16; i++) if (i !== 4) sum += buf[at + i]!;
  return (sum & 0xff) === buf[at + 4] && (location === undefined || buf.readUInt32LE(at + 12) === location);
}

/** A UDF dstring / d-characters field (OSTA compressed unicode: id 8 or 16, 254/255), without trailing padding. */
export function udfString(field: Buffer, usedLength = field.length): string {
  const comp = field[0];
  const body = field.subarray(1, Math.max(1, usedLength));
  let text = '';
  if (comp === 8 || comp === 254) text = body.toString('latin1');
  else if (comp === 16 || comp === 255) for (let i = 0; i + 1 < body.length; i += 2) text += String.fromCharCode(body.readUInt16BE(i));
  return text;
}

/** A dstring field: its last byte is the used length. */
function dstring(field: Buffer): string {
  const used = field[field.length - 1]!;
  return used === 0 ? '' : udfString(field, Math.min(used, field.length - 1));
}

/** The block size at which a valid anchor volume descriptor pointer sits at block 256, if any. */
export async function findAnchor(ctx: ListingContext): Promise<{ blockSize: number; anchor: Buffer } | undefined> {
  for (const bs of BLOCK_SIZES) {
    if (256 * bs + 512 > ctx.size) continue;
    const anchor = await ctx.bytes(256 * bs, 512, 'UDF anchor');
    if (isTag(anchor, TAG_ANCHOR, 256)) return { blockSize: bs, anchor };
  }
  return undefined;
}

interface Descriptors {
  volumeId: string;
  partitionStarts: Map<number, { start: number; length: number }>;
  lvd?: Buffer;
}

async function readSequence(ctx: ListingContext, bs: number, location: number, length: number): Promise<Descriptors> {
  const out: Descriptors = { volumeId: '', partitionStarts: new Map() };
  const bytes = Math.min(length, MAX_VDS_BYTES);
  const seq = await ctx.bytes(location * bs, bytes - (bytes % bs), 'UDF volume descriptor sequence');
  for (let i = 0; i * bs < seq.length; i++) {
    const d = seq.subarray(i * bs, (i + 1) * bs);
    const id = d.readUInt16LE(0);
    if (!isTag(d, id, location + i) || id === TAG_TERMINATING) break;
    if (id === TAG_PRIMARY && out.volumeId === '') out.volumeId = dstring(d.subarray(24, 56));
    else if (id === TAG_PARTITION) out.partitionStarts.set(d.readUInt16LE(22), { start: d.readUInt32LE(188), length: d.readUInt32LE(192) });
    else if (id === TAG_LOGICAL_VOLUME && out.lvd === undefined) out.lvd = d;
  }
  return out;
}

/** The partition maps of the logical volume descriptor: type 1 only (no virtual, sparable or metadata maps). */
function partitionMaps(lvd: Buffer, starts: Descriptors['partitionStarts'], where: number): UdfVolume['partitions'] {
  const count = lvd.readUInt32LE(268);
  const tableLength = lvd.readUInt32LE(264);
  const maps = new Map<number, { start: number; length: number }>();
  let p = 440;
  for (let i = 0; i < count && p + 2 <= Math.min(lvd.length, 440 + tableLength); i++) {
    const type = lvd[p]!;
    const len = lvd[p + 1]!;
    if (len < 2) break;
    if (type === 1 && len >= 6) {
      const part = starts.get(lvd.readUInt16LE(p + 4));
      if (part !== undefined) maps.set(i, part);
    } else if (type === 2) {
      const ident = lvd.toString('latin1', p + 5, p + 28).replace(/\0+$/, '');
      throw new DiscFormatError(`UDF partition map "${ident}" (virtual, sparable or metadata partition) is not supported`, where + p);
    }
    p += len;
  }
  if (maps.size === 0) throw new DiscFormatError('UDF logical volume has no usable partition', where);
  return maps;
}

/** The volume: anchor → main (else reserve) volume descriptor sequence → partitions and the FSD's place. */
export async function readUdfVolume(ctx: ListingContext): Promise<UdfVolume> {
  const found = await findAnchor(ctx);
  if (found === undefined) throw new DiscFormatError('no UDF anchor volume descriptor at block 256', 256 * 2048);
  const { blockSize: bs, anchor } = found;
  let seq = await readSequence(ctx, bs, anchor.readUInt32LE(20), anchor.readUInt32LE(16)).catch(() => undefined);
  if (seq?.lvd === undefined) seq = await readSequence(ctx, bs, anchor.readUInt32LE(28), anchor.readUInt32LE(24));
  const lvd = seq.lvd;
  if (lvd === undefined) throw new DiscFormatError('UDF volume descriptor sequence has no logical volume descriptor', 256 * bs);
  const lbs = lvd.readUInt32LE(212);
  if (lbs !== bs) throw new DiscFormatError(`UDF logical block size ${lbs} differs from the sector size ${bs}`, 256 * bs);
  const partitions = partitionMaps(lvd, seq.partitionStarts, 256 * bs);
  // Logical Volume Contents Use: the long_ad of the File Set Descriptor.
  const fsd = { block: lvd.readUInt32LE(248 + 4), partRef: lvd.readUInt16LE(248 + 8) };
  const volumeId = seq.volumeId || dstring(lvd.subarray(84, 212));
  return { blockSize: bs, partitions, fsd, volumeId };
}

/** The byte offset of a logical block, or a DiscFormatError when its partition or block does not exist. */
export function blockOffset(vol: UdfVolume, addr: LbAddr, what: string): number {
  const part = vol.partitions.get(addr.partRef);
  if (part === undefined || addr.block >= part.length) {
    throw new DiscFormatError(`${what}: block ${addr.block} of partition ${addr.partRef} does not exist`);
  }
  return (part.start + addr.block) * vol.blockSize;
}
