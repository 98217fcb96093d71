import type { ChecksumKind } from '../format/checksum.js';
import type { FileRange } from '../util/worker-protocol.js';

/** Messages between the scanner (scanner.ts) and its worker threads (scan-worker.ts). */

/** The candidates, as flat arrays (structured-clone friendly): index i is candidate i. */
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
  /** A candidate file's sums: RsyncSum64 of its first blockLength bytes, its head and whole checksums. */
  | { op: 'file'; id: number; path: string; size: number; kind: ChecksumKind; blockLength: number; ranges?: FileRange[] };

export type ScanReply =
  /** Pairs (image offset, candidate index) of confirmed matches. */
  | { op: 'matches'; id: number; matches: number[] }
  | { op: 'sum'; id: number; sum: Uint8Array }
  /** `sum`: the template's kind; `head` and `confirm`: CONFIRM. */
  | { op: 'file'; id: number; rsync: Uint8Array; head: Uint8Array; sum: Uint8Array; confirm: Uint8Array; zeros: number }
  | { op: 'progress'; bytes: number }
  | { op: 'error'; id: number; error: string };
