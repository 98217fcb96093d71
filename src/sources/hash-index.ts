import { constants, type Stats } from 'node:fs';
import { lstat, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { openRegular } from '../util/open-regular.js';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fsPath } from '../format/byte-string.js';
import type { ChecksumKind } from '../format/checksum.js';
import { blockDeviceMedium } from '../util/block-device.js';
import { eachLimit } from '../util/each-limit.js';
import { makeDirs } from '../util/make-dirs.js';
import { removeAtExit } from '../util/exit-leftovers.js';
import { ownerDead, ownerTag } from '../util/pid.js';
import { writeAll } from '../util/write-all.js';

/**
 * What tells, without reading a file, that its bytes are those we hashed. Size and mtime alone are not
 * enough: `touch -r` (and tools that keep mtimes) put back the mtime after an edit. The ctime cannot be
 * set by users and changes on every write, chmod, link or utimes; inode and device change when the file
 * is replaced or the path now leads elsewhere.
 */
export interface FileIdentity {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
  /**
   * A block device only (a disc in its drive, a loop device: `--scan /dev/sr0`): the medium in it
   * (blockDeviceMedium), since the node's own fields stay the same when a disc is swapped; `size` is then the
   * device's, from sysfs (stat says 0). Undefined for every other file.
   */
  medium?: string;
}

export function identityOf(st: FileIdentity): FileIdentity {
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev, ...(st.medium === undefined ? {} : { medium: st.medium }) };
}

/** The identity of the file `st` describes now: for a block device, with its size and medium read from sysfs. */
export async function identityOfStats(st: Stats): Promise<FileIdentity> {
  if (!st.isBlockDevice()) return identityOf(st);
  return { ...identityOf(st), ...(await blockDeviceMedium(st.rdev)) };
}

/** A block device `st` still holds the medium of `id`, at the same size, and is the same node (a gone medium: false). */
export async function sameMedium(st: Stats, id: FileIdentity): Promise<boolean> {
  const now = st.isBlockDevice() ? await identityOfStats(st).catch(() => undefined) : undefined;
  return now !== undefined && sameIdentity(id, now);
}

/** Same file, unchanged (a device: the same medium). A field missing (an index entry of an older version) is never the same. */
export function sameIdentity(a: Partial<FileIdentity>, b: FileIdentity): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino && a.dev === b.dev && a.medium === b.medium;
}

/** The size of a copy's file if it is still there with the identity it had; undefined if it is gone or replaced. */
export async function unchangedSize(copy: Partial<FileIdentity> & { path: string }): Promise<number | undefined> {
  const st = await stat(fsPath(copy.path)).catch(() => undefined); // a user's file name may hold non-UTF-8 bytes
  const now = st && (await identityOfStats(st).catch(() => undefined));
  return now && sameIdentity(copy, now) ? now.size : undefined;
}

/** Runs `fn` on each copy still there with the identity it had (one gone or replaced is skipped), 8 at a time. */
export async function eachUnchanged<C extends Partial<FileIdentity> & { path: string }>(copies: C[], fn: (copy: C, st: Stats) => Promise<unknown>): Promise<void> {
  await eachLimit(copies, 8, async (c) => {
    const st = await stat(c.path).catch(() => undefined);
    if (st && sameIdentity(c, st)) await fn(c, st).catch(() => undefined);
  });
}

/** Index files and their temporary copies are private: they list which local files we hashed. */
const PRIVATE_FILE_MODE = 0o600;

/** One file's record: its identity when hashed, and its checksums by kind (and region). */
interface Entry extends FileIdentity {
  /** `kind` or `kind@offset+length` → jigdo-base64 checksum. */
  sums: Record<string, string>;
}

const VERSION = 2;

interface IndexFile {
  version: typeof VERSION;
  files: Record<string, Entry>;
}

/** Which index file was read or written last (its inode, size, mtime): unchanged since, it need not be read again. */
interface DiskStamp {
  ino: number;
  size: number;
  mtimeMs: number;
}

const stampOfStats = (st: Stats): DiskStamp => ({ ino: st.ino, size: st.size, mtimeMs: st.mtimeMs });

const sameStamp = (a: DiskStamp | undefined, b: DiskStamp | undefined): boolean =>
  a !== undefined && b !== undefined && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;

/** Entries written to the index file at a time (its text is never built whole: 100,000 files are ~40 MB of it). */
const WRITE_ENTRIES = 2000;

const SAVE_DELAY_MS = 2000;
/** A save costs at most this share of the time between delayed saves (see nextSaveDelay). */
const SAVE_SHARE = 0.05;

/**
 * How long the next delayed save waits, after a save that took `lastSaveMs`: each save reads, merges and rewrites the
 * whole index, so at a fixed 2 s a first make-template over 100,000 files spent its time rewriting an index that grew
 * with every save (890 s against jigdo-file's 20 s); waiting 20 times the last save keeps that to a twentieth.
 */
export function nextSaveDelay(lastSaveMs: number): number {
  return Math.max(SAVE_DELAY_MS, Math.ceil(lastSaveMs / SAVE_SHARE));
}

/**
 * The persistent record of checksums of local files (like jigdo-file-cache.db): keyed by path and the
 * file's identity (size, mtime, ctime, inode, device), so a file is hashed once and a changed file is
 * hashed again. Stored as JSON under the cache directory, written atomically; concurrent writers merge
 * what is on disk before replacing it. Version 1 entries (path, size, mtime) are not read: an edit kept
 * under `touch -r` would pass them.
 *
 * Fields: `files` (every entry, as loaded and merged), `dirty` (paths changed or forgotten since the last
 * save), `timer` (the delayed save), `disk` (what the file held when last read or written, and its stamp). No lock: a
 * save reads what is on disk, merges `dirty` into it and renames a temporary file over it; entries set while it runs
 * are saved by the next one. A file with the stamp this process left is not read again (a first make-template over
 * 100,000 files spent more time parsing its own saves again than hashing).
 *
 * Nothing is kept for a block device (an identity with a `medium`: `--scan /dev/sr0`): its node keeps its inode
 * and times when the disc in it is swapped, so no stat field says which disc was hashed, and the kernel's medium
 * number that does (diskseq) starts again at every boot, so a record made under it could be taken for another
 * disc after a reboot. A part on a disc is hashed in each run that needs it (make-image takes one at the place the
 * .jigdo names on trust, as from any image file, and its image checksum checks it).
 */
export class HashIndex {
  private files = new Map<string, Entry>();
  private dirty = new Set<string>();
  private disk: { entries: Map<string, Entry>; stamp: DiskStamp } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();
  /** How long the last save took (nextSaveDelay). */
  private lastSaveMs = 0;
  readonly stats = { hits: 0, misses: 0 };

  private constructor(readonly file: string | undefined) {}

  /** Loads the index at `file`; a missing or unreadable index starts empty (it is only a cache). */
  static async load(file: string | undefined): Promise<HashIndex> {
    const index = new HashIndex(file);
    if (file) await removeDeadSaves(file);
    const read = file ? await readIndex(file) : undefined;
    if (read) {
      index.files = new Map(read.entries);
      index.disk = read;
    }
    return index;
  }

  private static field(kind: ChecksumKind, offset?: number, length?: number | string): string {
    return indexFieldName(kind, offset, length);
  }

  get(file: string, id: FileIdentity, kind: ChecksumKind, offset?: number, length?: number | string): string | undefined {
    return this.getValue(file, id, HashIndex.field(kind, offset, length));
  }

  /**
   * Any other value kept for a file under the same identity rule, e.g. make-template's `rsync64@1024`
   * (RsyncSum64 of the first 1024 bytes, as jigdo-file's cache keeps it).
   */
  getValue(file: string, id: FileIdentity, field: string): string | undefined {
    const e = this.files.get(file);
    const sum = e && id.medium === undefined && sameIdentity(e, id) ? e.sums[field] : undefined;
    if (sum) this.stats.hits++;
    else this.stats.misses++;
    return sum;
  }

  /** The checksum last recorded for this path, whatever its identity then (to say a file changed since). */
  previous(file: string, kind: ChecksumKind, offset?: number, length?: number | string): string | undefined {
    return this.files.get(file)?.sums[HashIndex.field(kind, offset, length)];
  }

  set(file: string, id: FileIdentity, kind: ChecksumKind, sum: string, offset?: number, length?: number | string): void {
    this.setValue(file, id, HashIndex.field(kind, offset, length), sum);
  }

  setValue(file: string, id: FileIdentity, field: string, sum: string): void {
    this.setValues(file, id, [[field, sum]]);
  }

  /** Several values of one file at once (make-template records five per candidate file). */
  setValues(file: string, id: FileIdentity, values: Array<[field: string, value: string]>): void {
    if (id.medium !== undefined) return; // a device: see the class's comment
    let e = this.files.get(file);
    if (!e || !sameIdentity(e, id)) this.files.set(file, (e = entryOf(id, {})));
    for (const [field, value] of values) e.sums[field] = value;
    this.dirty.add(file);
    if (this.file && !this.timer) {
      this.timer = setTimeout(() => void this.save().catch(() => undefined), nextSaveDelay(this.lastSaveMs));
      this.timer.unref();
    }
  }

  /**
   * Drops what is recorded for a file (its bytes were found not to match): the next lookup hashes it. With a
   * region (`offset`, `length` as in get), only that region's checksum: an old disc image holding one wrong
   * file keeps what is known of the others.
   */
  forget(file: string, region?: { kind: ChecksumKind; offset: number; length: number | string }): void {
    const e = this.files.get(file);
    if (!e) return;
    if (region) delete e.sums[HashIndex.field(region.kind, region.offset, region.length)];
    else this.files.delete(file);
    this.dirty.add(file);
  }

  /** Writes the changed entries, merged into whatever another process saved meanwhile. */
  save(): Promise<void> {
    // One save at a time: two at once would each merge into what is on disk, and the later rename
    // would drop what the other wrote (the delayed save racing an explicit one lost entries).
    const next = this.saving.then(() => this.saveNow());
    this.saving = next.catch(() => undefined);
    return next;
  }

  private async saveNow(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.file || this.dirty.size === 0) return;
    const changed = [...this.dirty];
    this.dirty.clear();
    const started = Date.now();
    await this.merged(this.file, changed).finally(() => (this.lastSaveMs = Date.now() - started));
  }

  /** Writes `changed` (paths set or forgotten) merged into what is on disk at `file`. */
  private async merged(file: string, changed: string[]): Promise<void> {
    const onDisk = sameStamp(this.disk?.stamp, await stampOf(file)) ? this.disk!.entries : ((await readIndex(file))?.entries ?? new Map<string, Entry>());
    this.disk = undefined; // changed below: read again should this save fail
    for (const f of changed) {
      const e = this.files.get(f);
      if (e) onDisk.set(f, e);
      else onDisk.delete(f); // forgotten: another process's copy of the wrong entry goes too
    }
    for (const [f, e] of onDisk) if (!this.files.has(f)) this.files.set(f, e);
    await makeDirs(path.dirname(file));
    const tmp = `${file}.${ownerTag()}-${randomBytes(4).toString('hex')}.tmp`; // several sessions may save at once
    const unlist = removeAtExit(tmp); // (a signal during the save: it goes)
    try {
      const stamp = await writeIndex(tmp, onDisk);
      await rename(tmp, file);
      this.disk = { entries: onDisk, stamp };
    } catch (err) {
      await rm(tmp, { force: true }); // a full disk: the old index stays as it was, no half file beside it
      throw err;
    } finally {
      unlist();
    }
  }
}

/**
 * Removes the temporary copies of the index that saves killed before their rename left (`FILE.HOSTTAG-PID-RAND.tmp`,
 * of this host's processes that no longer run): nothing else removed them, and each is as large as the index. Those
 * of versions before (`FILE.PID.RAND.tmp`) say no host, so only once a day old (a save takes seconds).
 */
async function removeDeadSaves(file: string): Promise<void> {
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

async function stampOf(file: string): Promise<DiskStamp | undefined> {
  // Opened, not only stat()ed: on NFS an open revalidates the file's attributes (close-to-open), while a stat may
  // answer from the client's cache for up to a minute, and another host's save in between would be written over.
  const fh = await openRegular(file, constants.O_RDONLY).catch(() => undefined);
  if (!fh) return undefined;
  try {
    return stampOfStats(await fh.stat());
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Writes an index file of `entries` (IndexFile's JSON), a few thousand entries at a time; returns its stamp. */
async function writeIndex(tmp: string, entries: Map<string, Entry>): Promise<DiskStamp> {
  const fh = await open(tmp, 'wx', PRIVATE_FILE_MODE);
  try {
    let at = 0;
    const put = async (text: string): Promise<void> => {
      const bytes = Buffer.from(text, 'utf8');
      await writeAll(fh, bytes, at);
      at += bytes.length;
    };
    let text = `{"version":${VERSION},"files":{`;
    let n = 0;
    for (const [name, entry] of entries) {
      text += `${n++ === 0 ? '' : ','}${JSON.stringify(name)}:${JSON.stringify(entry)}`;
      if (n % WRITE_ENTRIES !== 0) continue;
      await put(text);
      text = '';
    }
    await put(`${text}}}`);
    return stampOfStats(await fh.stat());
  } finally {
    await fh.close();
  }
}

/** The index file's entries, and its stamp as read; undefined if it is missing, unreadable or not ours. */
async function readIndex(file: string): Promise<{ entries: Map<string, Entry>; stamp: DiskStamp } | undefined> {
  let parsed: IndexFile;
  let stamp: DiskStamp;
  try {
    // Only a regular file (a FIFO there hung every run), and only as dense as ours (see tooDense).
    const fh = await openRegular(file, constants.O_RDONLY);
    let text: Buffer;
    try {
      stamp = stampOfStats(await fh.stat()); // (index files are replaced by rename, never written in place: the stamp is the text's)
      text = await fh.readFile();
    } finally {
      await fh.close().catch(() => undefined);
    }
    if (tooDense(text)) return undefined;
    parsed = JSON.parse(text.toString('utf8')) as IndexFile;
  } catch {
    return undefined;
  }
  if (parsed?.version !== VERSION || !parsed.files || typeof parsed.files !== 'object') return undefined;
  // Entry by entry: one of the wrong shape (`"sums": null`, written by hand or by a broken tool) failed every lookup
  // of its file on every run, since a file whose lookup fails is never recorded again.
  const entries = new Map<string, Entry>();
  for (const [name, entry] of Object.entries(parsed.files as Record<string, unknown>)) {
    const ok = wellFormed(entry);
    if (ok) entries.set(name, ok);
  }
  return { entries, stamp };
}

/**
 * Each entry we write is two JSON objects in well over 100 bytes (a path, five numbers, a checksum): a file with an object
 * or array for every 24 bytes is not ours. One of 13 million `{}` (39 MB) took 12.6 s and 1.1 GB to parse, on every run.
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
 * The name a value is kept under in a file's entry: `name` for the whole file, `name@offset+length` for a region
 * (`length` is a number, or a text naming several ranges: a fragmented file inside a disc image; see indexField).
 */
export function indexFieldName(name: string, offset?: number, length?: number | string): string {
  return offset === undefined ? name : `${name}@${offset}+${length}`;
}

/**
 * An entry of only the identity fields (a LocalCopy passed as identity must not bring its path into the index). Written
 * out as one literal: made by spreading the identity, each of 100,000 entries had a hidden class of its own (25 MB).
 */
function entryOf(id: FileIdentity, sums: Record<string, string>): Entry {
  return { size: id.size, mtimeMs: id.mtimeMs, ctimeMs: id.ctimeMs, ino: id.ino, dev: id.dev, sums };
}
