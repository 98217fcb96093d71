/** The types of a disc listing (see index.ts). Pure: no I/O beyond the positional read the caller gives. */

/** Reads `length` bytes at `offset` of the image; may return fewer bytes at its end. */
export type PositionalRead = (offset: number, length: number) => Promise<Buffer>;

/** A byte range of the image file. */
export interface DiscExtent {
  offset: number;
  length: number;
}

/**
 * One file of the disc: its '/'-separated relative path (the best name the disc has: Rock Ridge, then Joliet,
 * then plain ISO9660 without `;1`; non-UTF-8 bytes kept as byte-string.ts does), its size and where its bytes
 * are in the image, in order (several extents: an ISO9660 multi-extent file or a fragmented UDF file).
 */
export interface DiscFile {
  path: string;
  size: number;
  extents: DiscExtent[];
}

export type DiscKind = 'iso9660' | 'udf';

export interface DiscListing {
  kind: DiscKind;
  volumeId: string;
  /** One entry per distinct extent list (hard links and shared extents: the first path is kept). */
  files: DiscFile[];
  /** What was skipped and why (absurd extents, loops, unsupported entries); at most MAX_WARNINGS. */
  warnings: string[];
}

export interface ListOptions {
  /** Directory entries read in all (default 1,000,000); more is a DiscFormatError. */
  maxEntries?: number;
  /** Directory depth (default 64); deeper folders are skipped with a warning. */
  maxDepth?: number;
  /** File and directory extents read in all (default MAX_LISTING_EXTENTS); more is a DiscFormatError. */
  maxExtents?: number;
  /** For an ISO9660+UDF bridge: which tree to list (default 'udf', falling back to ISO9660 if UDF is unreadable). */
  prefer?: DiscKind;
}

/** Bad input: what is wrong and where (a byte offset of the image). One line. */
export class DiscFormatError extends Error {
  override name = 'DiscFormatError';
  constructor(
    readonly problem: string,
    readonly offset?: number,
  ) {
    super(offset === undefined ? problem : `at byte ${offset}: ${problem}`);
  }
}
