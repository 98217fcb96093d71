import { constants, type Stats } from 'node:fs';
import { lstat, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fileLines } from '../util/file-lines.js';
import { withRegularFile } from '../util/open-regular.js';
import { ownerDead } from '../util/pid.js';
import { writeAll } from '../util/write-all.js';
import type { FileIdentity } from './hash-index.js';

/*
 * The hash index's file (see HashIndex): its format, read and written, and the temporary copies its saves leave.
 */

/** Index files and their temporary copies are private: they list which local files we hashed. */
const PRIVATE_FILE_MODE = 0o600;

/** One file's record: its identity when hashed, and its checksums by kind (and region). */
export interface Entry extends FileIdentity {
  /** `kind` or `kind@offset+length` → jigdo-base64 checksum. */
  sums: Record<string, string>;
}

/**
 * The index file, version 3: this first line, then one line per file, `JSON.stringify([path, entry])`. Read a line at a
 * time: version 2 (one JSON document, still read: see readLegacyIndex) had to be read and parsed whole, which took
 * 5.7 times its size in memory at the load's peak (297 MB at 100,000 files), and could not be read at all past V8's
 * longest string (536,870,888 characters: an index of 1.7 million files, 587 MB, read as empty).
 */
const HEADER = '{"version":3}\n';
const LEGACY_VERSION = 2;

interface LegacyIndexFile {
  version: typeof LEGACY_VERSION;
  files: Record<string, Entry>;
}

/** A line longer than this is not one of ours (a path and a few checksums; an old disc image's entry holds a checksum per file in it). */
const MAX_LINE = 64 << 20;

/** Which index file was read or written last (its inode, size, mtime): unchanged since, it need not be read again. */
export interface DiskStamp {
  ino: number;
  size: number;
  mtimeMs: number;
}

const stampOfStats = (st: Stats): DiskStamp => ({ ino: st.ino, size: st.size, mtimeMs: st.mtimeMs });

export const sameStamp = (a: DiskStamp | undefined, b: DiskStamp | undefined): boolean =>
  a !== undefined && b !== undefined && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;

/** Entries written to the index file at a time (its text is never built whole: 100,000 files are ~40 MB of it). */
const WRITE_ENTRIES = 2000;

/**
 * Removes the temporary copies of the index that saves killed before their rename left (`FILE.HOSTTAG-PID-RAND.tmp`,
 * of this host's processes that no longer run): nothing else removed them, and each is as large as the index. Those
 * of versions before (`FILE.PID.RAND.tmp`) say no host, so only once a day old (a save takes seconds).
 */
export async function removeDeadSaves(file: string): Promise<void> {
  const dir = path.dirname(file);
  const prefix = `${path.basename(file)}.`;
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith(prefix) && n.endsWith('.tmp'));
  const dead = await Promise.all(names.map(async (n) => {
    const rest = n.slice(prefix.length);
    if (ownerDead(rest)) return n;
    if (!OLD_SAVE.test(rest)) return undefined;
    const st = await lstat(path.join(dir, n)).catch(() => undefined);
    return st?.isFile() && Date.now() - st.mtimeMs > OLD_SAVE_AGE_MS ? n : undefined;
  }));
  await Promise.all(dead.map((n) => n && rm(path.join(dir, n), { force: true }).catch(() => undefined)));
}

/** A temporary copy's name after `FILE.` in versions before the owner tag, and how old one must be to be removed. */
const OLD_SAVE = /^\d+\.[0-9a-f]{8}\.tmp$/;
const OLD_SAVE_AGE_MS = 24 * 3600 * 1000;

export async function stampOf(file: string): Promise<DiskStamp | undefined> {
  // Opened, not only stat()ed: on NFS an open revalidates the file's attributes (close-to-open), while a stat may
  // answer from the client's cache for up to a minute, and another host's save in between would be written over.
  return withRegularFile(file, constants.O_RDONLY, async (fh) => stampOfStats(await fh.stat())).catch(() => undefined);
}

/** Writes an index file of `entries` (see HEADER), a few thousand entries at a time; returns its stamp. */
export async function writeIndex(tmp: string, entries: Map<string, Entry>): Promise<DiskStamp> {
  const fh = await open(tmp, 'wx', PRIVATE_FILE_MODE);
  try {
    let at = 0;
    const put = async (text: string): Promise<void> => {
      const bytes = Buffer.from(text, 'utf8');
      await writeAll(fh, bytes, at);
      at += bytes.length;
    };
    let text = HEADER;
    let n = 0;
    for (const [name, entry] of entries) {
      text += `${JSON.stringify([name, entry])}\n`;
      if (++n % WRITE_ENTRIES !== 0) continue;
      await put(text);
      text = '';
    }
    await put(text);
    return stampOfStats(await fh.stat());
  } finally {
    await fh.close();
  }
}

/** Which entries of an index file a process keeps (the others are not read into memory); all when undefined. */
export type KeepEntry = ((entry: Entry) => boolean) | undefined;

/** The index file's entries (those `keep` keeps), and its stamp as read; undefined if it is missing, unreadable or not ours. */
export async function readIndex(file: string, keep?: KeepEntry): Promise<{ entries: Map<string, Entry>; stamp: DiskStamp } | undefined> {
  try {
    // Only a regular file (a FIFO there hung every run).
    return await withRegularFile(file, constants.O_RDONLY, async (fh) => {
      const stamp = stampOfStats(await fh.stat()); // (index files are replaced by rename, never written in place: the stamp is the text's)
      const head = Buffer.alloc(HEADER.length);
      await fh.read(head, 0, head.length, 0);
      const kept = new Kept(keep);
      if (head.toString('latin1') === HEADER) await readLines(fh, kept);
      else if (!(await readLegacyIndex(fh, kept))) return undefined;
      return { entries: kept.entries, stamp };
    });
  } catch {
    return undefined;
  }
}

/**
 * The entries of an index file of version 3, line by line. Line by line too, a damaged one is dropped and the rest
 * kept: an entry of the wrong shape (`"sums": null`, written by hand or by a broken tool) failed every lookup of its
 * file on every run, since a file whose lookup fails is never recorded again.
 */
async function readLines(fh: FileHandle, kept: Kept): Promise<void> {
  for await (const line of fileLines(fh, HEADER.length, MAX_LINE)) {
    if (tooDense(afterPath(line))) continue; // (a path of brackets, `[a][b][c]…`, is a name like any other)
    let parsed: unknown;
    try {
      parsed = JSON.parse(line.toString('utf8'));
    } catch {
      continue;
    }
    if (!Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[0] !== 'string') continue;
    kept.add(parsed[0], parsed[1]);
  }
}

/** Reads the entries of an index file of version 2 (one JSON document, read whole); false if it is not one (see tooDense). */
async function readLegacyIndex(fh: FileHandle, kept: Kept): Promise<boolean> {
  const text = await fh.readFile();
  if (tooDense(text)) return false;
  const parsed = JSON.parse(text.toString('utf8')) as LegacyIndexFile;
  if (parsed?.version !== LEGACY_VERSION || !parsed.files || typeof parsed.files !== 'object') return false;
  for (const [name, entry] of Object.entries(parsed.files as Record<string, unknown>)) kept.add(name, entry);
  return true;
}

/** The entries read so far that are well formed and kept. */
class Kept {
  readonly entries = new Map<string, Entry>();

  constructor(private readonly keep: KeepEntry) {}

  add(name: string, entry: unknown): void {
    const ok = wellFormed(entry);
    if (ok && (!this.keep || this.keep(ok))) this.entries.set(name, ok);
  }
}

/** What a line holds after its path (`["PATH"`): the entry; the whole line if it does not begin with a path. */
function afterPath(line: Buffer): Buffer {
  if (line[0] !== 0x5b || line[1] !== 0x22) return line; // '["'
  for (let i = 2; i < line.length; i++) {
    if (line[i] === 0x5c) i++; // '\\': the next byte is escaped
    else if (line[i] === 0x22) return line.subarray(i + 1);
  }
  return line;
}

/**
 * Each entry we write is at most three JSON objects and arrays in well over 100 bytes (a path, five numbers, a checksum): a
 * file (version 2) or line's entry (version 3) with an object or array for every 24 bytes is not ours. One of 13 million `{}`
 * (39 MB) took 12.6 s and 1.1 GB to parse, on every run.
 */
function tooDense(text: Buffer): boolean {
  let open = 0;
  for (let i = text.indexOf(0x7b); i !== -1; i = text.indexOf(0x7b, i + 1)) open++; // '{'
  for (let i = text.indexOf(0x5b); i !== -1; i = text.indexOf(0x5b, i + 1)) open++; // '['
  return open * 24 > text.length + 48;
}

const IDENTITY_FIELDS = ['size', 'mtimeMs', 'ctimeMs', 'ino', 'dev'] as const;

/** `entry` as an Entry when it has one's shape (its checksums: those that are strings), else undefined. */
function wellFormed(entry: unknown): Entry | undefined {
  if (!entry || typeof entry !== 'object') return undefined;
  const e = entry as Record<string, unknown>;
  if (!IDENTITY_FIELDS.every((f) => typeof e[f] === 'number')) return undefined;
  if (!e.sums || typeof e.sums !== 'object' || Array.isArray(e.sums)) return undefined;
  const sums: Record<string, string> = {};
  for (const [k, v] of Object.entries(e.sums)) if (typeof v === 'string') sums[k] = v;
  return entryOf(e as unknown as FileIdentity, sums);
}

/**
 * An entry of only the identity fields (a LocalCopy passed as identity must not bring its path into the index). Written
 * out as one literal: made by spreading the identity, each of 100,000 entries had a hidden class of its own (25 MB).
 */
export function entryOf(id: FileIdentity, sums: Record<string, string>): Entry {
  return { size: id.size, mtimeMs: id.mtimeMs, ctimeMs: id.ctimeMs, ino: id.ino, dev: id.dev, sums };
}
