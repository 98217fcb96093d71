/** A byte range of the image: [start, end] inclusive, as HTTP counts them. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * What a `Range` header asks of an image of `size` bytes (RFC 9110 §14):
 * - `full`: no header, or one we ignore (not `bytes=`, bad syntax, too many ranges): answer 200 with everything;
 * - `ranges`: the satisfiable ranges, in the order asked (206);
 * - `unsatisfiable`: none of the ranges has a byte of the image (416).
 */
export type RangeRequest = { kind: 'full' } | { kind: 'ranges'; ranges: ByteRange[] } | { kind: 'unsatisfiable' };

/** More ranges than this in one request are answered with the whole image (a cheap denial-of-service guard). */
export const MAX_RANGES = 64;

const SPEC = /^(\d*)-(\d*)$/;

/** One `first-last`, `first-` or `-suffix` spec; null when malformed, undefined when unsatisfiable. */
function parseSpec(spec: string, size: number): ByteRange | null | undefined {
  const m = SPEC.exec(spec.trim());
  if (!m) return null;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return null;
  if (a === '') {
    const suffix = Number(b);
    if (!Number.isSafeInteger(suffix)) return null;
    if (suffix === 0 || size === 0) return undefined;
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(a);
  const last = b === '' ? size - 1 : Number(b);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(last)) return null;
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
  return ranges.length === 0 ? { kind: 'unsatisfiable' } : { kind: 'ranges', ranges };
}

/** Bytes in a range. */
export const rangeLength = (r: ByteRange): number => r.end - r.start + 1;

/** The `Content-Range` value of a range of an image of `size` bytes. */
export const contentRange = (r: ByteRange, size: number): string => `bytes ${r.start}-${r.end}/${size}`;
