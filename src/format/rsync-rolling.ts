import { RSYNC_TABLE as T } from './rsync.js';

/**
 * RsyncSum64 (spec §3) over a sliding window: `reset` sums a window, `roll` moves it one byte on in O(1).
 * lo = Σ T[x], hi = Σ of the running lo = Σ (n - i) · T[x_i] (i from 0), both mod 2^32; one byte out and
 * one in: lo' = lo - T[out] + T[in], hi' = hi - n · T[out] + lo'. Pure: no I/O, no allocation per roll.
 * Equal to rsyncSum64 of the window at every step (test/unit/format-rsync-rolling.test.ts).
 */
export class RollingRsyncSum64 {
  lo = 0;
  hi = 0;

  /** `window`: the bytes summed (jigdo's DESC uses the first 1024 bytes of each part). */
  constructor(readonly window: number) {}

  /** Sums `data[at .. at + window)`. */
  reset(data: Uint8Array, at = 0): void {
    let lo = 0;
    let hi = 0;
    for (let i = at; i < at + this.window; i++) {
      lo = (lo + T[data[i]!]!) >>> 0;
      hi = (hi + lo) >>> 0;
    }
    this.lo = lo;
    this.hi = hi;
  }

  /** Slides the window one byte: `out` (its first byte) leaves, `incoming` enters at its end. */
  roll(out: number, incoming: number): void {
    const tOut = T[out]!;
    this.lo = (this.lo - tOut + T[incoming]!) >>> 0;
    this.hi = (this.hi - ((this.window * tOut) % 0x100000000) + this.lo) >>> 0;
  }

  /** True when the sum is `sum` (8 serialized bytes: lo LE, hi LE, as rsyncSum64 and the DESC give it). */
  equals(sum: Uint8Array): boolean {
    const b = Buffer.from(sum.buffer, sum.byteOffset, sum.byteLength);
    return b.length === 8 && b.readUInt32LE(0) === this.lo && b.readUInt32LE(4) === this.hi;
  }

  /** The sum as one number-free key: 16 hex digits of lo, hi (for a Map of wanted sums). */
  key(): string {
    return this.lo.toString(16).padStart(8, '0') + this.hi.toString(16).padStart(8, '0');
  }

  /** The key of 8 serialized sum bytes, comparable with key(). */
  static keyOf(sum: Uint8Array): string {
    const b = Buffer.from(sum.buffer, sum.byteOffset, sum.byteLength);
    return b.readUInt32LE(0).toString(16).padStart(8, '0') + b.readUInt32LE(4).toString(16).padStart(8, '0');
  }
}

/**
 * The same, unrolled by the caller for make-template's inner loop (src/publish/scan-kernel.ts), which rolls
 * over every byte of an image. Sums are kept as two int32 halves (`| 0` wraps
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
    const t = T[x]!;
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
