/** A byte range of the image: [start, end] inclusive, as HTTP counts them. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * What a `Range` header asks of an image of `size` bytes (RFC 9110 §14):
 * - `full`: no header, or one we ignore (not `bytes=`, bad syntax, too many ranges, more bytes than the image has):
 *   answer 200 with everything;
 * - `ranges`: the satisfiable ranges, in the order asked (206);
 * - `unsatisfiable`: none of the ranges has a byte of the image (416).
 */
export type RangeRequest = { kind: 'full' } | { kind: 'ranges'; ranges: ByteRange[] } | { kind: 'unsatisfiable' };

/** More ranges than this in one request are answered with the whole image (a cheap denial-of-service guard). */
export const MAX_RANGES = 64;

const SPEC = /^(\d*)-(\d*)$/;

/**
 * A position's digits as a number; past 2^53 Infinity (RFC 9110 §14.1.1: recipients expect large numerals). Leading
 * zeros are allowed (1*DIGIT) and count for nothing: `0000000000000100` is 100, not a huge number (it asked for the
 * whole image).
 */
const position = (digits: string): number => {
  const value = digits.replace(/^0+(?=\d)/, '');
  return value.length > 15 ? Infinity : Number(value);
};

/** One `first-last`, `first-` or `-suffix` spec; null when malformed, undefined when unsatisfiable. */
function parseSpec(spec: string, size: number): ByteRange | null | undefined {
  const m = SPEC.exec(spec.trim());
  if (!m) return null;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return null;
  if (a === '') {
    const suffix = position(b);
    if (suffix === 0 || size === 0) return undefined;
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = position(a);
  const last = b === '' ? size - 1 : position(b);
  if (b !== '' && last < start) return null;
  if (start >= size) return undefined;
  return { start, end: Math.min(last, size - 1) };
}

/** Parses a `Range` header against an image of `size` bytes. */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'full' };
  const eq = header.indexOf('=');
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return { kind: 'full' };
  const specs = header.slice(eq + 1).split(',').filter((s) => s.trim() !== '');
  if (specs.length === 0 || specs.length > MAX_RANGES) return { kind: 'full' };
  const ranges: ByteRange[] = [];
  for (const spec of specs) {
    const r = parseSpec(spec, size);
    if (r === null) return { kind: 'full' };
    if (r) ranges.push(r);
  }
  if (ranges.length === 0) return { kind: 'unsatisfiable' };
  // More bytes than the image has (overlapping ranges: `0-,0-,…`) would be as many reads of it for one short request
  // (RFC 9110 §14.2 names the pattern): the image once instead.
  return ranges.reduce((n, r) => n + rangeLength(r), 0) > size ? { kind: 'full' } : { kind: 'ranges', ranges };
}

/** Bytes in a range. */
export const rangeLength = (r: ByteRange): number => r.end - r.start + 1;

/** The `Content-Range` value of a range of an image of `size` bytes. */
export const contentRange = (r: ByteRange, size: number): string => `bytes ${r.start}-${r.end}/${size}`;
