import type { ChecksumKind } from '../format/checksum.js';
import { JigdoError } from '../format/errors.js';
import type { Desc } from '../format/template.js';
import { lastAtOrBefore } from '../util/binary-search.js';

/** A stretch of the image: bytes of the raw stream, or all of one part. */
export type Region =
  | { kind: 'raw'; offset: number; length: number; rawOffset: number }
  | { kind: 'part'; offset: number; length: number; key: string };

/** What the image needs of one distinct part (a part may sit at several offsets). */
export interface PartNeed {
  key: string;
  sum: Buffer;
  length: number;
  offsets: number[];
}

/**
 * The image as sorted, non-empty regions with O(log n) lookup by offset. Zero-length parts take no
 * space and are always "available", so they are left out of the regions (spec §7).
 */
export class ImageLayout {
  readonly regions: Region[];
  readonly parts: Map<string, PartNeed>;
  private readonly starts: Float64Array;

  constructor(
    readonly size: number,
    readonly checksumKind: ChecksumKind,
    readonly imageSum: Buffer,
    regions: Region[],
    parts: Map<string, PartNeed>,
  ) {
    this.regions = regions;
    this.parts = parts;
    this.starts = Float64Array.from(regions, (r) => r.offset);
  }

  /**
   * The layout of the template `file`'s DESC. A part listed with two lengths is refused: no file is both, and make-image
   * blamed the local copy of whichever length came second ("shorter than when it was verified").
   */
  static fromDesc(desc: Desc, file: string): ImageLayout {
    const regions: Region[] = [];
    const parts = new Map<string, PartNeed>();
    for (const e of desc.entries) {
      if (e.kind === 'raw' && e.length > 0) {
        regions.push({ kind: 'raw', offset: e.offset, length: e.length, rawOffset: e.rawOffset });
      } else if (e.kind === 'part') {
        let need = parts.get(e.key);
        if (!need) parts.set(e.key, (need = { key: e.key, sum: e.sum, length: e.length, offsets: [] }));
        else if (need.length !== e.length) throw new JigdoError(file, `part ${e.key} is listed with two lengths, ${need.length} and ${e.length} bytes: a corrupt template`);
        need.offsets.push(e.offset);
        if (e.length > 0) regions.push({ kind: 'part', offset: e.offset, length: e.length, key: e.key });
      }
    }
    return new ImageLayout(desc.imageSize, desc.imageChecksumKind, desc.imageSum, regions, parts);
  }

  /** Index of the region holding `offset` (which must be inside the image). */
  indexAt(offset: number): number {
    return lastAtOrBefore(this.starts, offset);
  }

  /** The regions overlapping [offset, offset+length), each with the slice of it that is wanted. */
  *slices(offset: number, length: number): Generator<{ region: Region; from: number; length: number }> {
    const end = Math.min(this.size, offset + length);
    if (offset >= end) return;
    for (let i = this.indexAt(offset); i < this.regions.length; i++) {
      const region = this.regions[i]!;
      if (region.offset >= end) break;
      const from = Math.max(offset, region.offset) - region.offset;
      const to = Math.min(end, region.offset + region.length) - region.offset;
      yield { region, from, length: to - from };
    }
  }

  get partBytes(): number {
    let n = 0;
    for (const r of this.regions) if (r.kind === 'part') n += r.length;
    return n;
  }
}
