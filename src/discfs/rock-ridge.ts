import { capReached, type ListingContext } from './context.js';

/** What the System Use entries (SUSP, Rock Ridge RRIP) of one directory record say. */
export interface RockRidge {
  /** NM: the POSIX name's bytes (undefined when the record has none). */
  name?: Buffer;
  /** SL: a symbolic link (not a file with bytes). */
  symlink: boolean;
  /** RE: a relocated directory, listed where its CL entry points from. */
  relocated: boolean;
  /** CL: this record stands for the directory at this block. */
  childLink?: number;
}

/** Continuation areas (CE) followed per record: a loop of CE entries stops here. */
const MAX_CONTINUATIONS = 32;
const MAX_CONTINUATION_BYTES = 65536;
const MAX_NAME_BYTES = 4096;

/** SP in the system use area of the root's `.` record: Rock Ridge (SUSP) is present; returns LEN_SKP. */
export function suspSkip(su: Buffer): number | undefined {
  if (su.length >= 7 && su[0] === 0x53 && su[1] === 0x50 && su[4] === 0xbe && su[5] === 0xef) return su[6]!;
  return undefined;
}

interface Continuation {
  block: number;
  offset: number;
  length: number;
}

/** One area's entries into `out`; returns the continuation (CE) to read next, if any. */
function parseArea(area: Buffer, out: RockRidge, nameParts: Buffer[]): Continuation | undefined {
  let next: Continuation | undefined;
  let p = 0;
  while (p + 4 <= area.length) {
    const sig = area.toString('latin1', p, p + 2);
    const len = area[p + 2]!;
    if (len < 4 || p + len > area.length || sig === 'ST') break;
    if (sig === 'NM' && len >= 5 && (area[p + 4]! & 0x06) === 0) nameParts.push(area.subarray(p + 5, p + len));
    else if (sig === 'SL') out.symlink = true;
    else if (sig === 'RE') out.relocated = true;
    else if (sig === 'CL' && len >= 12) out.childLink = area.readUInt32LE(p + 4);
    else if (sig === 'CE' && len >= 28) next = { block: area.readUInt32LE(p + 4), offset: area.readUInt32LE(p + 12), length: area.readUInt32LE(p + 20) };
    p += len;
  }
  return next;
}

/**
 * The Rock Ridge entries of a record's system use area `su` (after `skip` bytes), following CE continuation
 * areas (bounded in count and size; a bad one ends the entries with a warning).
 */
export async function readRockRidge(ctx: ListingContext, su: Buffer, skip: number, blockSize: number, where: number): Promise<RockRidge> {
  const out: RockRidge = { symlink: false, relocated: false };
  const nameParts: Buffer[] = [];
  let next = parseArea(su.subarray(skip), out, nameParts);
  for (let hops = 0; next !== undefined; hops++) {
    if (hops >= MAX_CONTINUATIONS || next.length > MAX_CONTINUATION_BYTES) {
      ctx.warn(`byte ${where}: Rock Ridge continuation chain too long or too large: ignored`);
      break;
    }
    const offset = next.block * blockSize + next.offset;
    let area: Buffer;
    try {
      area = await ctx.bytes(offset, next.length, 'Rock Ridge continuation area');
    } catch (err) {
      if (capReached(err)) throw err;
      ctx.warn(`byte ${where}: ${(err as Error).message}: ignored`);
      break;
    }
    next = parseArea(area, out, nameParts);
  }
  if (nameParts.length > 0) {
    const name = Buffer.concat(nameParts);
    if (name.length <= MAX_NAME_BYTES) out.name = name;
  }
  return out;
}
