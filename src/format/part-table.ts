import type { JigdoValue } from './jigdo.js';
import type { Location } from './location.js';

/** Alternative [Parts] lines kept for one checksum (libjte writes one per copy of a file: a handful). */
export const MAX_VALUES_PER_PART = 1000;
/** One stored [Parts] value: a plain string when it has weight 0 and comes from the main file. */
type Packed = string | JigdoValue;

/**
 * The [Parts] lines by checksum key, stored compactly: most parts have one plain value, kept as one
 * string (no object, no array), so millions of lines cost near the size of their text. Reads like a
 * read-only Map of value lists; the lists are made on each call.
 */
export class PartTable {
  private readonly map = new Map<string, Packed | Packed[]>();
  /** [Parts] lines kept, in all. */
  lines = 0;

  constructor(private readonly home: Location) {}

  /** Adds one value; false when the part already has MAX_VALUES_PER_PART of them. */
  add(key: string, uri: string, weight: number, base: Location): boolean {
    const packed: Packed = weight === 0 && base === this.home ? uri : { uri, weight, base };
    const old = this.map.get(key);
    if (old === undefined) this.map.set(key, packed);
    else if (!Array.isArray(old)) this.map.set(key, [old, packed]);
    else if (old.length >= MAX_VALUES_PER_PART) return false;
    else old.push(packed);
    this.lines++;
    return true;
  }

  get size(): number {
    return this.map.size;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  get(key: string): JigdoValue[] | undefined {
    const packed = this.map.get(key);
    if (packed === undefined) return undefined;
    return Array.isArray(packed) ? packed.map((p) => this.unpack(p)) : [this.unpack(packed)];
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
  }

  *values(): IterableIterator<JigdoValue[]> {
    for (const key of this.map.keys()) yield this.get(key)!;
  }

  *entries(): IterableIterator<[string, JigdoValue[]]> {
    for (const key of this.map.keys()) yield [key, this.get(key)!];
  }

  [Symbol.iterator](): IterableIterator<[string, JigdoValue[]]> {
    return this.entries();
  }

  forEach(fn: (values: JigdoValue[], key: string) => void): void {
    for (const [key, values] of this.entries()) fn(values, key);
  }

  private unpack(p: Packed): JigdoValue {
    return typeof p === 'string' ? { uri: p, weight: 0, base: this.home } : p;
  }
}
