import type { ChecksumKind } from '../format/checksum.js';
import type { FileRange } from '../util/worker-protocol.js';
import type { SumTable } from './scan-kernel.js';

/** Messages between the scanner (scanner.ts) and its worker threads (scan-worker.ts). */

/**
 * The candidates, as flat arrays: index i is candidate i. Made once, in shared memory, for every scan worker: each
 * received its own copy, and built its own table of sums, 27 MB per worker for 100,000 candidates (BENCHMARKS.md).
 */
export interface ScanSetup {
  imagePath: string;
  imageSize: number;
  blockLength: number;
  kind: ChecksumKind;
  /** RsyncSum64 of each candidate's first blockLength bytes, int32 halves. */
  lo: Int32Array;
  hi: Int32Array;
  sizes: Float64Array;
  /** CONFIRM checksum of the whole file, 32 bytes each. */
  sums: Uint8Array;
  /** CONFIRM checksum of the first min(size, HEAD_LENGTH) bytes: a cheap first check. */
  heads: Uint8Array;
  /** How many zero bytes each candidate begins with (where it starts at the end of a run of zeros: scan-worker.ts). */
  zeros: Float64Array;
  /** The table of `lo` and `hi` the rolling scan looks windows up in. */
  table: SumTable;
}

/** Bytes of a candidate's head checksum. */
export const HEAD_LENGTH = 64 * 1024;

/**
 * Image bytes are confirmed against candidates by SHA-256 whatever the template's checksum kind: with the
 * CPU's SHA extensions it runs 2.5x faster than MD5 here (node crypto, 64 MiB buffers: 756-783 vs 311-314 MB/s).
 */
export const CONFIRM: ChecksumKind = 'sha256';

export type ScanRequest =
  | { op: 'setup'; setup: ScanSetup }
  /** Test windows starting in [from, to); a match must end at or before `limit`. */
  | { op: 'scan'; id: number; from: number; to: number; limit: number }
  /** Checksum of image[offset, offset + length) (ISO-aware matching, and the whole image). */
  | { op: 'hash'; id: number; offset: number; length: number; kind: ChecksumKind }
  /**
   * Candidate files' sums: RsyncSum64 of the first blockLength bytes, the head and whole checksums. Many small files to
   * a message: one message per file made the main thread's postMessage and its garbage the limit of a large tree.
   */
  | { op: 'files'; id: number; kind: ChecksumKind; blockLength: number; files: FileJob[] };

/** A candidate file to read: its path, size and (a file inside a disc image) its byte ranges there. */
export interface FileJob {
  path: string;
  size: number;
  ranges?: FileRange[];
}

/** Bytes of one file's record in a `files` reply: RsyncSum64 (8), head and whole CONFIRM (32 each), the template's kind (32). */
export const FILE_RECORD = 104;

export type ScanReply =
  /** Pairs (image offset, candidate index) of confirmed matches. */
  | { op: 'matches'; id: number; matches: number[] }
  | { op: 'sum'; id: number; sum: Uint8Array }
  /** File i: its FILE_RECORD bytes at i × FILE_RECORD of `sums` and its leading zeros, or why it could not be read. */
  | { op: 'files'; id: number; sums: Uint8Array; zeros: Float64Array; errors: Array<string | null> }
  | { op: 'progress'; bytes: number }
  | { op: 'error'; id: number; error: string };
