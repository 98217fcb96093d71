import type { FileHandle } from 'node:fs/promises';
import { DiscFormatError, detectDisc, fileReader, listDisc, type DiscFile, type DiscKind } from '../discfs/index.js';
import type { Match, Scanner, Stretch } from './scanner.js';
import { CONFIRM, type ScanSetup } from './scan-protocol.js';

/**
 * ISO-aware matching: the image's own directory (discfs, our positional reader) says where each file's
 * bytes are, so a candidate of the same size is confirmed by one checksum of those bytes instead of a
 * rolling scan over them. Only contiguous files can be parts (jigdo-file matches contiguous runs only):
 * a fragmented file is left to the rolling scan of the rest, which covers every byte no match explains.
 *
 * Where this can differ from jigdo-file: a candidate lying wholly inside another matched file, not at its
 * start (jigdo-file's greedy scan would take the inner one; here the whole file wins). A prefix at the
 * start is handled exactly.
 */
export interface DiscMatches {
  kind: DiscKind;
  matches: Match[];
  /** What the rolling scan must still cover: every byte outside the confirmed matches. */
  rest: Stretch[];
}

/** The file's bytes as one run of the image, if they are one. */
function contiguous(f: DiscFile): number | undefined {
  let at = f.extents[0]?.offset;
  if (at === undefined) return undefined;
  const start = at;
  let total = 0;
  for (const e of f.extents) {
    if (e.offset !== at) return undefined;
    at += e.length;
    total += e.length;
  }
  return total === f.size ? start : undefined;
}

function gaps(ranges: Array<[number, number]>, size: number): Stretch[] {
  const out: Stretch[] = [];
  let at = 0;
  for (const [from, to] of ranges.sort((a, b) => a[0] - b[0])) {
    if (from > at) out.push({ from: at, to: from, limit: from });
    at = Math.max(at, to);
  }
  if (at < size) out.push({ from: at, to: size, limit: size });
  return out;
}

/** Candidates smaller than `c` that start with the same block (same RsyncSum64): possible prefixes. */
function prefixes(setup: ScanSetup): (c: number) => boolean {
  const byStart = new Map<string, number>();
  for (let i = 0; i < setup.sizes.length; i++) {
    const k = `${setup.lo[i]},${setup.hi[i]}`;
    byStart.set(k, Math.min(byStart.get(k) ?? Infinity, setup.sizes[i]!));
  }
  return (c) => byStart.get(`${setup.lo[c]},${setup.hi[c]}`)! < setup.sizes[c]!;
}

export async function discMatches(
  image: FileHandle,
  setup: ScanSetup,
  scanner: Scanner,
  warn: (line: string) => void,
  onHashed: (bytes: number) => void,
): Promise<DiscMatches | undefined> {
  const { imageSize, sizes, sums } = setup;
  const read = fileReader(image);
  if ((await detectDisc(read, imageSize)) === null) return undefined;
  let listing;
  try {
    listing = await listDisc(read, imageSize);
  } catch (err) {
    if (!(err instanceof DiscFormatError)) throw err;
    warn(`the image's directory cannot be read (${err.message}): scanning it all`);
    return undefined;
  }
  const hasPrefix = prefixes(setup);
  const bySize = new Map<number, number[]>();
  sizes.forEach((s, i) => {
    const same = bySize.get(s);
    if (same) same.push(i);
    else bySize.set(s, [i]); // (a copy of the list per insert was quadratic: 40,000 files of one size took 10 s)
  });
  const L = sums.length / Math.max(1, sizes.length);
  const seen = new Set<string>();
  const jobs: Array<Promise<Match[]>> = [];
  for (const f of listing.files) {
    const candidates = bySize.get(f.size);
    const offset = candidates ? contiguous(f) : undefined;
    if (!candidates || offset === undefined || seen.has(`${offset}+${f.size}`)) continue;
    seen.add(`${offset}+${f.size}`);
    jobs.push(scanner.hash(offset, f.size, CONFIRM).then((sum) => {
      onHashed(f.size);
      return candidates.filter((c) => sum.equals(sums.subarray(c * L, c * L + L))).map((candidate) => ({ offset, candidate }));
    }));
  }
  // A smaller candidate with the same first block may be a prefix: jigdo-file would take it (it ends
  // first), so such a region is left to the rolling scan, which finds exactly what jigdo-file finds.
  const matches = (await Promise.all(jobs)).flat().filter((m) => !hasPrefix(m.candidate));
  const ranges = [...new Set(matches.map((m) => `${m.offset}+${sizes[m.candidate]}`))].map((k): [number, number] => {
    const [o, s] = k.split('+').map(Number) as [number, number];
    return [o, o + s];
  });
  return { kind: listing.kind, matches, rest: gaps(ranges, imageSize) };
}
