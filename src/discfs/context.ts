import { DiscFormatError, type DiscExtent, type DiscFile, type PositionalRead } from './types.js';

export const MAX_WARNINGS = 100;
/** A directory's own data is read whole: larger ones are skipped (a real one of 1M entries is ~40 MB). */
export const MAX_DIRECTORY_BYTES = 64 << 20;
/** Extents of one file (UDF fragments, ISO9660 multi-extent sections). */
export const MAX_FILE_EXTENTS = 65536;
/**
 * Extents of one listing in all. Each file may have MAX_FILE_EXTENTS, and UDF's allocation descriptor chains may loop
 * back on one block: 1,600 such files in a 4 MB image held 4.3 GB and killed the process. A real disc has about one
 * per file.
 */
export const MAX_LISTING_EXTENTS = 1 << 20;
/**
 * Bytes a listing reads in all, beyond the image's own size. A real disc's directories, continuation areas and file
 * entries are distinct places read about once; each cap per record (32 Rock Ridge continuations of 64 KiB, 1024 UDF
 * extent blocks, a 64 MiB directory) still let a crafted image make one listing re-read the same bytes for hours.
 */
export const MAX_METADATA_BEYOND_IMAGE = MAX_DIRECTORY_BYTES;

/** A listing-wide cap reached (`more than …`): it ends the listing, where a broken directory or record is skipped. */
export const capReached = (err: unknown): boolean => err instanceof DiscFormatError && err.problem.startsWith('more than');

/**
 * The state of one listing: the bounded reader over the image, the entry budget, the warnings, and the files
 * found so far, deduplicated by their extent lists.
 */
export class ListingContext {
  readonly warnings: string[] = [];
  readonly files: DiscFile[] = [];
  private readonly seen = new Set<string>();
  private entries = 0;
  private extents = 0;
  private bytesRead = 0;

  constructor(
    private readonly reader: PositionalRead,
    readonly size: number,
    readonly maxEntries: number,
    readonly maxDepth: number,
    readonly maxExtents = MAX_LISTING_EXTENTS,
  ) {}

  /** Exactly `length` bytes at `offset`, or a DiscFormatError naming `what` (beyond the image, truncated). */
  async bytes(offset: number, length: number, what: string): Promise<Buffer> {
    if (!inImage(offset, length, this.size)) {
      throw new DiscFormatError(`${what}: ${length} bytes lie beyond the end of the image (${this.size} bytes)`, offset);
    }
    this.bytesRead += length;
    if (this.bytesRead > this.size + MAX_METADATA_BEYOND_IMAGE) {
      throw new DiscFormatError(`more than ${this.size + MAX_METADATA_BEYOND_IMAGE} bytes of metadata read (the image's size and 64 MiB): its structures loop`, offset);
    }
    const buf = await this.reader(offset, length);
    if (buf.length < length) throw new DiscFormatError(`${what}: the image ends early (read ${buf.length} of ${length} bytes)`, offset);
    return buf.length === length ? buf : buf.subarray(0, length);
  }

  warn(line: string): void {
    if (this.warnings.length < MAX_WARNINGS) this.warnings.push(line);
    else if (this.warnings.length === MAX_WARNINGS) this.warnings.push('more warnings left out');
  }

  /**
   * Lists the directories of `queue` in order, `visit` adding the subdirectories it finds: a broken directory is
   * skipped with a warning; a cap reached (`more than …`) ends the listing.
   */
  async drain<D extends { path: string }>(queue: D[], visit: (dir: D) => Promise<void>): Promise<void> {
    for (let dir = queue.shift(); dir !== undefined; dir = queue.shift()) {
      try {
        await visit(dir);
      } catch (err) {
        if (!(err instanceof DiscFormatError) || capReached(err)) throw err;
        this.warn(`${dir.path}/: skipped: ${err.message}`);
      }
    }
  }

  /** Counts one extent against the listing's budget. */
  countExtent(offset: number): void {
    if (++this.extents > this.maxExtents) throw new DiscFormatError(`more than ${this.maxExtents} extents in all`, offset);
  }

  /** Counts one directory entry against the budget. */
  countEntry(offset: number): void {
    if (++this.entries > this.maxEntries) throw new DiscFormatError(`more than ${this.maxEntries} directory entries`, offset);
  }

  /**
   * Adds a file unless its extents are absurd (outside the image, not adding up to its size: skipped with a
   * warning) or were already listed under another name (a hard link). Adjacent extents are merged.
   */
  addFile(path: string, size: number, extents: DiscExtent[]): void {
    if (size === 0) return;
    const merged = mergeExtents(extents);
    const total = merged.reduce((sum, e) => sum + e.length, 0);
    const bad = merged.find((e) => !inImage(e.offset, e.length, this.size) || e.length <= 0);
    if (bad !== undefined || total !== size) {
      const why = bad !== undefined ? `extent ${bad.offset}+${bad.length} lies outside the image (${this.size} bytes)` : `extents add up to ${total}, not ${size}`;
      this.warn(`${path}: skipped: ${why}`);
      return;
    }
    const key = merged.map((e) => `${e.offset}+${e.length}`).join(',');
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.files.push({ path, size, extents: merged });
  }
}

/** True when [offset, offset+length) is a range of safe integers inside an image of `size` bytes. */
export function inImage(offset: number, length: number, size: number): boolean {
  return Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= size;
}

function mergeExtents(extents: DiscExtent[]): DiscExtent[] {
  const out: DiscExtent[] = [];
  for (const e of extents) {
    if (e.length === 0) continue;
    const last = out[out.length - 1];
    if (last !== undefined && last.offset + last.length === e.offset) last.length += e.length;
    else out.push({ offset: e.offset, length: e.length });
  }
  return out;
}

/** True when `name` can be one component of a relative path. */
export function plainName(name: string): boolean {
  return name.length > 0 && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}
