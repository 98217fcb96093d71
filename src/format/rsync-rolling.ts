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
