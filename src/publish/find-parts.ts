import type { FileHandle } from 'node:fs/promises';
import type { Candidate } from './candidates.js';
import type { MakeTemplateOptions } from './make-template.js';
import { parseSum } from '../format/rsync-rolling.js';
import { Scanner, type CandidateSums, type Match } from './scanner.js';
import type { ScanSetup } from './scan-protocol.js';
import { selectMatches } from './select.js';
import { discMatches } from './iso-match.js';
import { buildSumTable } from './scan-kernel.js';

/**
 * Finds the parts in the image: the generic rolling scan over the whole image (or, for a disc image,
 * over what its directory does not explain — iso-match.ts), then jigdo-file's greedy choice. The image
 * checksum is computed on a scan worker meanwhile.
 */
export interface FindJob {
  opts: MakeTemplateOptions;
  imageSize: number;
  candidates: Candidate[];
  sums: CandidateSums[];
  image: FileHandle;
  scanner: Scanner;
}

export interface Found {
  mode: 'iso9660' | 'udf' | 'generic';
  chosen: Match[];
  imageSum: () => Promise<Buffer>;
}

/** Typed arrays over shared memory: the scan workers read the one copy (ScanSetup). */
const shared = <T>(make: new (buffer: SharedArrayBuffer) => T, bytesPer: number, n: number): T => new make(new SharedArrayBuffer(bytesPer * n));

function scanSetup(job: FindJob): ScanSetup {
  const n = job.candidates.length;
  const L = 32; // CONFIRM checksums
  const lo = shared(Int32Array, 4, n);
  const hi = shared(Int32Array, 4, n);
  const sizes = shared(Float64Array, 8, n);
  const sums = shared(Uint8Array, L, n);
  const heads = shared(Uint8Array, L, n);
  const zeros = shared(Float64Array, 8, n);
  job.sums.forEach((s, i) => {
    [lo[i], hi[i]] = parseSum(s.rsync);
    sizes[i] = job.candidates[i]!.size;
    sums.set(s.confirm, i * L);
    heads.set(s.head, i * L);
    zeros[i] = s.zeros;
  });
  const table = buildSumTable(lo, hi, (k) => shared(Int32Array, 4, k));
  return { imagePath: job.opts.image, imageSize: job.imageSize, blockLength: job.opts.minLength, kind: job.opts.kind, lo, hi, sizes, sums, heads, zeros, table };
}

export async function findParts(job: FindJob): Promise<Found> {
  const { opts, imageSize } = job;
  const setup = scanSetup(job);
  let matched = 0;
  const { scanner } = job;
  scanner.setup(setup);
  scanner.onProgress = (bytes) => opts.progress.add(bytes);
  try {
    const imageSum = scanner.hash(0, imageSize, opts.kind);
    imageSum.catch(() => undefined); // awaited by the template writer
    opts.progress.start('scanning the image', imageSize);
    const disc = opts.iso && job.candidates.length > 0
      ? await discMatches(job.image, setup, scanner, opts.warn, (n) => opts.progress.add(n))
      : undefined;
    const rest = disc ? disc.rest : [{ from: 0, to: imageSize, limit: imageSize }];
    const matches = job.candidates.length === 0 ? [] : [...(disc?.matches ?? []), ...(await scanner.scan(rest))];
    matched = matches.length;
    opts.progress.matched = matched;
    opts.progress.stop();
    const chosen = selectMatches(matches, setup.sizes);
    const sum = await imageSum;
    return { mode: disc ? disc.kind : 'generic', chosen, imageSum: () => Promise.resolve(sum) };
  } finally {
    opts.progress.stop();
  }
}
