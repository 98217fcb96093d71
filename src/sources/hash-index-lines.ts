import { readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { writeAll } from '../util/write-all.js';
import type { FileIdentity } from './file-identity.js';

/*
 * The hash index's entries, and the lines of its file (version 3: see hash-index-file.ts), one `[path, entry]` per
 * file: read where the index keeps them, and written.
 */

/** One file's record: its identity when hashed, and its checksums by kind (and region). */
export interface Entry extends FileIdentity {
  /** `kind` or `kind@offset+length` → jigdo-base64 checksum. */
  sums: Record<string, string>;
}

/**
 * The values of a file's entry, made when they are needed: saved or looked up (HashIndex.setValuesLater). `identity` is
 * copied then, not now (entryOf). Made at once, make-template's first run over 100,000 files held ~30 MB of heap in
 * their strings and objects until saved; as a closure each, ~15 MB.
 */
export abstract class LaterValues {
  abstract readonly identity: FileIdentity;
  abstract values(): Array<[field: string, value: string]>;
}

/** Those of several regions of one file. */
export class SeveralLater extends LaterValues {
  constructor(
    readonly identity: FileIdentity,
    readonly parts: LaterValues[],
  ) {
    super();
  }

  values(): Array<[field: string, value: string]> {
    return this.parts.flatMap((p) => p.values());
  }
}

/** A line longer than this is not one of ours (a path and a few checksums; an old disc image's entry holds a checksum per file in it). */
export const MAX_LINE = 64 << 20;

/** The path a line begins with (`["PATH",`), and where it ends; undefined if the line does not begin with one. */
export function pathOfLine(line: Buffer): { path: string; end: number } | undefined {
  if (line[0] !== 0x5b || line[1] !== 0x22) return undefined; // '["'
  let escaped = false;
  for (let i = 2; i < line.length; i++) {
    if (line[i] === 0x5c) {
      escaped = true;
      i++; // '\\': the next byte is escaped
    } else if (line[i] === 0x22) {
      if (!escaped) return { path: line.toString('utf8', 2, i), end: i + 1 };
      try {
        const path: unknown = JSON.parse(line.toString('utf8', 1, i + 1));
        return typeof path === 'string' ? { path, end: i + 1 } : undefined;
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/**
 * Each entry we write is at most three JSON objects and arrays in well over 100 bytes (a path, five numbers, a checksum): a
 * file (version 2) or line's entry (version 3) with an object or array for every 24 bytes is not ours. One of 13 million `{}`
 * (39 MB) took 12.6 s and 1.1 GB to parse, on every run.
 */
export function tooDense(text: Buffer): boolean {
  let open = 0;
  for (let i = text.indexOf(0x7b); i !== -1; i = text.indexOf(0x7b, i + 1)) open++; // '{'
  for (let i = text.indexOf(0x5b); i !== -1; i = text.indexOf(0x5b, i + 1)) open++; // '['
  return open * 24 > text.length + 48;
}

/** The path and entry of a line, if it is one of ours and well formed (see wellFormed). */
export function parseLine(line: Buffer): [path: string, entry: Entry] | undefined {
  const at = pathOfLine(line);
  if (tooDense(at ? line.subarray(at.end) : line)) return undefined; // (a path of brackets, `[a][b][c]…`, is a name like any other)
  let parsed: unknown;
  try {
    parsed = JSON.parse(line.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[0] !== 'string') return undefined;
  const entry = wellFormed(parsed[1]);
  return entry && [parsed[0], entry];
}

const IDENTITY_FIELDS = ['size', 'mtimeMs', 'ctimeMs', 'ino', 'dev'] as const;

/**
 * `entry` as an Entry when it has one's shape (its checksums: those that are strings), else undefined. An entry of the
 * wrong shape (`"sums": null`, written by hand or by a broken tool) failed every lookup of its file on every run, since a
 * file whose lookup fails is never recorded again.
 */
export function wellFormed(entry: unknown): Entry | undefined {
  if (!entry || typeof entry !== 'object') return undefined;
  const e = entry as Record<string, unknown>;
  if (!IDENTITY_FIELDS.every((f) => typeof e[f] === 'number')) return undefined;
  if (!e.sums || typeof e.sums !== 'object' || Array.isArray(e.sums)) return undefined;
  const sums = e.sums as Record<string, unknown>;
  // Kept as parsed when every value is a string (ours always are): a copy each was a second make-template's garbage.
  const strings = Object.values(sums).every((v) => typeof v === 'string');
  return entryOf(e as unknown as FileIdentity, (strings ? sums : Object.fromEntries(Object.entries(sums).filter(([, v]) => typeof v === 'string'))) as Record<string, string>);
}

/**
 * An entry of only the identity fields (a LocalCopy passed as identity must not bring its path into the index). Written
 * out as one literal: made by spreading the identity, each of 100,000 entries had a hidden class of its own (25 MB).
 */
export function entryOf(id: FileIdentity, sums: Record<string, string>): Entry {
  return { size: id.size, mtimeMs: id.mtimeMs, ctimeMs: id.ctimeMs, ino: id.ino, dev: id.dev, sums };
}

/** Bytes read at a time where an entry is looked up: lookups in the order the file was written read it in these steps. */
const WINDOW = 64 * 1024;
/** Bytes read for a lookup elsewhere in the file: most lines are shorter (a longer one is read again, larger). */
const LINE_READ = 2048;

/**
 * An index file held open, its entries read where they are when looked up. The index keeps in memory only each path and
 * where its line begins: parsed whole, 100,000 entries of make-template took ~61 MB of heap (BENCHMARKS.md). Read
 * synchronously (lookups are), a window at a time. The file is the one this process read or wrote: open, it stays as it
 * was when another process's save renames its own over its name.
 */
export class IndexLines {
  private window = Buffer.alloc(0);
  private windowAt = 0;
  private windowLength = 0;
  /** Bytes the last read asked for (fewer came only at the file's end). */
  private asked = 0;

  constructor(private readonly fh: FileHandle) {}

  /**
   * The entry on the line at `offset` if it is `path`'s and well formed; undefined for a damaged line or one that cannot
   * be read (looked up as missing: the file is hashed again).
   */
  entryAt(offset: number, path: string): Entry | undefined {
    let line: Buffer | undefined;
    try {
      line = this.lineAt(offset);
    } catch {
      this.windowLength = 0; // (an error reading: ESTALE on NFS once another host's save replaced the file, EIO)
    }
    const parsed = line && parseLine(line);
    if (this.window.length > WINDOW) [this.window, this.windowLength] = [Buffer.alloc(0), 0]; // (a long line's is not kept)
    return parsed && parsed[0] === path ? parsed[1] : undefined;
  }

  /** The line at `offset`, without its newline: a view of the window, valid until the next read. */
  private lineAt(offset: number): Buffer | undefined {
    for (;;) {
      const from = offset - this.windowAt;
      const inWindow = from >= 0 && from < this.windowLength;
      const nl = inWindow ? this.window.indexOf(0x0a, from) : -1;
      if (nl !== -1 && nl < this.windowLength) return this.window.subarray(from, nl);
      if (inWindow && this.windowLength < this.asked) return this.window.subarray(from, this.windowLength); // the last line, without a newline
      // Not wholly in the window: one read from `offset`, twice the last when the line filled it; a window's worth when
      // the lookups go on where it ended (the file's order), else a line's (lookups at random do not read 64 KiB each).
      const onward = from >= 0 && from <= this.windowLength;
      const want = inWindow && from === 0 ? 2 * this.asked : onward ? WINDOW : LINE_READ;
      if (want > 2 * MAX_LINE) return undefined;
      if (this.window.length < want) this.window = Buffer.allocUnsafe(want);
      [this.windowAt, this.asked] = [offset, want];
      this.windowLength = readSync(this.fh.fd, this.window, 0, want, offset);
      if (this.windowLength === 0) return undefined;
    }
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** Bytes gathered before a write. */
const WRITE_CHUNK = 1 << 20;

/**
 * Writes an index file's lines after its header, a chunk at a time, and notes where each path's line begins. The first
 * line of a path wins; later ones are not written.
 */
export class IndexWriter {
  readonly offsets = new Map<string, number>();
  private readonly chunk = Buffer.allocUnsafe(WRITE_CHUNK);
  private used: number;
  private flushedTo = 0;

  constructor(
    private readonly fh: FileHandle,
    header: string,
  ) {
    this.used = this.chunk.write(header, 0, 'latin1');
  }

  /** An entry read from another file, as it was. */
  copy(path: string, line: Buffer): Promise<void> {
    return this.line(path, line);
  }

  entry(path: string, entry: Entry): Promise<void> {
    return this.line(path, JSON.stringify([path, entry]));
  }

  /** Writes what is gathered; call once every line is given. */
  async flush(): Promise<void> {
    await writeAll(this.fh, this.chunk.subarray(0, this.used), this.flushedTo);
    this.flushedTo += this.used;
    this.used = 0;
  }

  /** `path`'s line, unless it has one; a text is written into the chunk as it is (no Buffer of its own each). */
  private async line(path: string, line: Buffer | string): Promise<void> {
    if (this.offsets.has(path)) return;
    this.offsets.set(path, this.flushedTo + this.used);
    const length = typeof line === 'string' ? Buffer.byteLength(line) : line.length;
    if (this.used + length + 1 > WRITE_CHUNK) await this.flush();
    if (length + 1 > WRITE_CHUNK) {
      await writeAll(this.fh, Buffer.concat([Buffer.from(line), Buffer.from('\n')]), this.flushedTo);
      this.flushedTo += length + 1;
      return;
    }
    this.used += typeof line === 'string' ? this.chunk.write(line, this.used) : line.copy(this.chunk, this.used);
    this.chunk[this.used++] = 0x0a;
  }
}
