import { RSYNC_TABLE } from './rsync.js';

/**
 * The rolling form of RsyncSum64 (spec §3.1) over a window of `blockLength` bytes: what jigdo-file's
 * make-template rolls over every byte of an image. Sums are kept as two int32 halves (`| 0` wraps
 * modulo 2^32 like the C++ uint32): compare them with `| 0` values, serialize with `>>> 0`.
 *
 * Rolling one byte: lo' = lo - T[out] + T[in]; hi' = hi - blockLength*T[out] + lo'.
 */
export interface RollingTables {
  /** T[x] as int32. */
  add: Int32Array;
  /** blockLength * T[x] mod 2^32, as int32: what leaving the window takes off `hi`. */
  remove: Int32Array;
}

export function rollingTables(blockLength: number): RollingTables {
  const add = new Int32Array(256);
  const remove = new Int32Array(256);
  for (let x = 0; x < 256; x++) {
    const t = RSYNC_TABLE[x]!;
    add[x] = t | 0;
    remove[x] = Number((BigInt(t) * BigInt(blockLength)) & 0xffffffffn) | 0;
  }
  return { add, remove };
}

/** [lo, hi] (int32) of RsyncSum64 over data[start, start + length). */
export function windowSum(data: Uint8Array, start: number, length: number, add: Int32Array): [number, number] {
  let lo = 0;
  let hi = 0;
  for (let i = start; i < start + length; i++) {
    lo = (lo + add[data[i]!]!) | 0;
    hi = (hi + lo) | 0;
  }
  return [lo, hi];
}

/** The 8 bytes a template stores (lo LE, hi LE). */
export function serializeSum(lo: number, hi: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeUInt32LE(lo >>> 0, 0);
  out.writeUInt32LE(hi >>> 0, 4);
  return out;
}

/** The int32 halves of a serialized sum. */
export function parseSum(sum: Uint8Array): [number, number] {
  const b = Buffer.from(sum.buffer, sum.byteOffset, 8);
  return [b.readInt32LE(0), b.readInt32LE(4)];
}
