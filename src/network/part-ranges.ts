/**
 * How one part's bytes are split into ranges fetched in parallel, and how far each range is written.
 * The bytes of a range [start, pos) are in the part's temporary file; the part is complete when every
 * range reached its end.
 */

export interface Range {
  start: number;
  end: number;
  /** Bytes [start, pos) are written. */
  pos: number;
}

/**
 * A part longer than `rangeSize` is split into ranges of about that size (all of one size but the last),
 * when more than one stream per part is allowed; otherwise it is one range.
 */
export function planRanges(length: number, rangeSize: number, streamsPerPart: number): Range[] {
  const count = length > rangeSize && streamsPerPart > 1 ? Math.ceil(length / rangeSize) : 1;
  const size = Math.ceil(length / count);
  return Array.from({ length: count }, (_, i) => ({ start: i * size, end: Math.min(length, (i + 1) * size), pos: i * size }));
}

/**
 * The ranges of one part fetch. Owns each range's `pos`: the streams of a fetch move it forward (never
 * back, except by `restart`); they run on the main thread, so no locks.
 */
export class PartRanges {
  readonly ranges: Range[];

  constructor(length: number, rangeSize: number, streamsPerPart: number) {
    this.ranges = planRanges(length, rangeSize, streamsPerPart);
  }

  complete(): boolean {
    return this.ranges.every((r) => r.pos >= r.end);
  }

  /** The ranges not complete yet. */
  unfinished(): Range[] {
    return this.ranges.filter((r) => r.pos < r.end);
  }

  /** Bytes written from the part's start without a gap: what a resumed fetch may keep (CacheWriter.keepWritten). */
  contiguous(): number {
    for (const r of this.ranges) if (r.pos < r.end) return r.pos;
    return this.ranges.at(-1)?.end ?? 0;
  }

  /** Everything written so far is to be fetched again (its bytes are not trusted). */
  restart(): void {
    for (const r of this.ranges) r.pos = r.start;
  }

  /** A whole-file stream from byte 0 has written [0, pos): every range it covers is that far. */
  advanceAll(pos: number): void {
    for (const x of this.ranges) if (x.start < pos) x.pos = Math.max(x.pos, Math.min(x.end, pos));
  }
}
