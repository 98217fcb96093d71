import { ListingContext } from './context.js';
import { isIsoDescriptor, listIso, readIsoVolumes, SECTOR, VD_START } from './iso9660.js';
import { listUdf } from './udf-tree.js';
import { findAnchor } from './udf-volume.js';
import { DiscFormatError, type DiscKind, type DiscListing, type ListOptions, type PositionalRead } from './types.js';

/**
 * The disc-filesystem reader: lists the files of an ISO9660 (Joliet, Rock Ridge, multi-extent) or UDF image
 * (bridge or UDF-only, fragmented files) with their byte ranges inside the image file. It needs nothing but a
 * positional read; every size and offset is checked against the image size, entries and depth are capped,
 * directory loops are detected, and what cannot be trusted is skipped with a warning, never read.
 */
export { DiscFormatError } from './types.js';
export { fileReader } from './file-reader.js';
export type { DiscExtent, DiscFile, DiscKind, DiscListing, ListOptions, PositionalRead } from './types.js';

/** How far detectDisc looks for the volume recognition sequence: sectors 16..23 (one read). */
const VRS_BYTES = 8 * SECTOR;

interface Recognised {
  iso: boolean;
  udf: boolean;
}

async function recognise(ctx: ListingContext): Promise<Recognised> {
  if (ctx.size < VD_START + SECTOR) return { iso: false, udf: false };
  const vrs = await ctx.bytes(VD_START, Math.min(VRS_BYTES, ctx.size - VD_START), 'volume recognition sequence');
  const idents: string[] = [];
  for (let at = 0; at + 6 <= vrs.length; at += SECTOR) idents.push(vrs.toString('latin1', at + 1, at + 6));
  const iso = isIsoDescriptor(vrs);
  const nsr = idents.includes('BEA01') && (idents.includes('NSR02') || idents.includes('NSR03'));
  return { iso, udf: nsr && (await findAnchor(ctx)) !== undefined };
}

/**
 * What filesystem the image holds, from its volume descriptors (one 16 KiB read, and the UDF anchor when the
 * recognition sequence names UDF): 'udf' for UDF-only images and ISO9660+UDF bridges, 'iso9660', or null.
 */
export async function detectDisc(read: PositionalRead, size: number): Promise<DiscKind | null> {
  const found = await recognise(new ListingContext(read, size, 0, 0));
  return found.udf ? 'udf' : found.iso ? 'iso9660' : null;
}

/**
 * The files of the disc image. Throws DiscFormatError when the image has no filesystem this reader knows
 * or its volume or root directory cannot be read; problems further down become `warnings`.
 */
export async function listDisc(read: PositionalRead, size: number, opts: ListOptions = {}): Promise<DiscListing> {
  const fresh = (): ListingContext => new ListingContext(read, size, opts.maxEntries ?? 1_000_000, opts.maxDepth ?? 64, opts.maxExtents);
  let ctx = fresh();
  const found = await recognise(ctx);
  if (!found.iso && !found.udf) throw new DiscFormatError('no ISO9660 or UDF volume descriptors (not a disc image)', VD_START);
  if (found.udf && (opts.prefer !== 'iso9660' || !found.iso)) {
    try {
      const volumeId = await listUdf(ctx);
      return { kind: 'udf', volumeId, files: ctx.files, warnings: ctx.warnings };
    } catch (err) {
      if (!(err instanceof DiscFormatError) || !found.iso) throw err;
      ctx = fresh();
      ctx.warn(`UDF unreadable (${err.message}): listed the ISO9660 tree instead`);
    }
  }
  const volumeId = await listIso(ctx, await readIsoVolumes(ctx));
  return { kind: 'iso9660', volumeId, files: ctx.files, warnings: ctx.warnings };
}
