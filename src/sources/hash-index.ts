import { lstat, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { ChecksumKind } from '../format/checksum.js';
import { cacheDirLocks, LOCK_STALE_MS, type CacheLocks } from '../cache/cache-lock.js';
import { makeDirs } from '../util/make-dirs.js';
import { removeAtExit } from '../util/exit-leftovers.js';
import { ownerTag } from '../util/pid.js';
import { sameIdentity, type FileIdentity } from './file-identity.js';
import { indexThere, readIndex, removeDeadSaves, savedEntries, writeIndex, type KeepEntry } from './hash-index-file.js';
import { LaterValues, SeveralLater, entryOf, type Entry, type IndexLines } from './hash-index-lines.js';

const SAVE_DELAY_MS = 2000;
/** Entries read from the index file kept parsed (see HashIndex.entry). */
const RECENT_ENTRIES = 16;
/** Closes a dropped index's file (see HashIndex.disk). */
const closeWhenDropped = new FinalizationRegistry<{ lines?: IndexLines }>((held) => void held.lines?.close().catch(() => undefined));
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

/** The index of image sessions (mount, serve, make-image, missing, verify) in a cache directory. */
export const SESSION_INDEX = 'hash-index.jsonl';

/**
 * make-template's index, apart from the sessions': it records every candidate file of its trees (a mirror: hundreds of
 * thousands), and a session reads its whole index before it mounts: with make-template's 100,000 files in it, a mount
 * of the sample image returned in 1.9 s instead of 0.45 s, its daemon at 121-137 MB instead of 57-76 (BENCHMARKS.md).
 */
export const MAKE_TEMPLATE_INDEX = 'make-template-index.jsonl';

/**
 * The one index of versions before (version 2, one JSON document, both kinds of entries), read when an index of ours is
 * not there yet, and never written: a version before that shares the cache directory cannot read ours, and each of its
 * saves would have replaced everything we recorded with its own few entries.
 */
export const LEGACY_INDEX = 'hash-index.json';

/** An entry make-template wrote (it alone records rolling sums, `rsync64…`). */
function madeByMakeTemplate(e: Entry): boolean {
  return Object.keys(e.sums).some((k) => k.startsWith('rsync64'));
}

/** The session index of `cacheDir`; if it has none yet, the entries of the index of versions before that were not make-template's. */
export function loadSessionIndex(cacheDir: string): Promise<HashIndex> {
  return HashIndex.load(path.join(cacheDir, SESSION_INDEX), { file: path.join(cacheDir, LEGACY_INDEX), keep: (e) => !madeByMakeTemplate(e) });
}

/** make-template's index of `cacheDir`; if it has none yet, the entries of the index of versions before that were make-template's. */
export function loadMakeTemplateIndex(cacheDir: string): Promise<HashIndex> {
  return HashIndex.load(path.join(cacheDir, MAKE_TEMPLATE_INDEX), { file: path.join(cacheDir, LEGACY_INDEX), keep: madeByMakeTemplate });
}

/**
 * The persistent record of checksums of local files (like jigdo-file-cache.db): keyed by path and the
 * file's identity (size, mtime, ctime, inode, device), so a file is hashed once and a changed file is
 * hashed again. Stored under the cache directory as JSON, a line per file (hash-index-file.ts), written
 * atomically; concurrent writers merge what is on disk before replacing it, one at a time. Version 1 entries (path, size,
 * mtime) are not read: an edit kept under `touch -r` would pass them.
 *
 * A save takes the cache's lock of this index file (cache-lock.ts: other processes take turns with it), copies what is
 * on disk a line at a time with the `dirty` entries (changed or forgotten since the last save) in place of theirs, and
 * renames the copy over it; entries set while it runs are saved by the next one. Without the turns, two processes that
 * read the file before either renamed its copy over it each wrote only what it had read: the later rename dropped what
 * the other recorded.
 *
 * Nothing is kept for a block device (an identity with a `medium`: `--scan /dev/sr0`): its node keeps its inode
 * and times when the disc in it is swapped, so no stat field says which disc was hashed, and the kernel's medium
 * number that does (diskseq) starts again at every boot, so a record made under it could be taken for another
 * disc after a reboot. A part on a disc is hashed in each run that needs it (make-image takes one at the place the
 * .jigdo names on trust, as from any image file, and its image checksum checks it).
 */
export class HashIndex {
  /**
   * Each file's entry: parsed (set since the last save, or of an index read parsed), its values to be made when it is
   * saved (setValuesLater), or where its line is in `disk`.
   */
  private files = new Map<string, Held>();
  private dirty = new Set<string>();
  /**
   * `lines`: the index file last read or written, held open: the lines `files` points at. In an object of its own, for
   * closeWhenDropped to close when the index is dropped without a close (a session's index lives as long as its process).
   */
  private readonly disk: { lines?: IndexLines } = {};
  /** The entries last read from `disk`: a lookup asks for several values of one file in a row. */
  private readonly recent = new Map<string, Entry>();
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();
  /** How long the last save took (nextSaveDelay). */
  private lastSaveMs = 0;
  private locks: CacheLocks | undefined;
  /** Entries read from the index of versions before: all written at the first save, if no process made the file yet. */
  private fromLegacy = false;
  readonly stats = { hits: 0, misses: 0 };

  private constructor(readonly file: string | undefined) {
    closeWhenDropped.register(this, this.disk);
  }

  /**
   * Loads the index at `file`; a missing or unreadable index starts empty (it is only a cache). When `file` is not there,
   * the entries of `legacy.file` that `legacy.keep` keeps (an index of versions before), saved soon into `file`.
   */
  static async load(file: string | undefined, legacy?: { file: string; keep: KeepEntry }): Promise<HashIndex> {
    const index = new HashIndex(file);
    if (file) await removeDeadSaves(file);
    const read = file ? await readIndex(file) : undefined;
    if (read) {
      index.files = read.entries;
      index.hold(read.lines);
    } else if (file && legacy && !(await exists(file))) {
      await removeDeadSaves(legacy.file);
      const old = await readIndex(legacy.file, legacy.keep);
      // Saved soon even if none of its entries are ours (an index of make-template's alone): else every session read
      // the old file whole again until one of them recorded something.
      if (old) {
        index.files = old.entries;
        index.fromLegacy = true;
        index.saveLater();
      }
    }
    return index;
  }

  /** `lines` is now the file `files` points at; the one before is closed. */
  private hold(lines: IndexLines | undefined): void {
    const before = this.disk.lines;
    this.disk.lines = lines;
    this.recent.clear();
    before?.close().catch(() => undefined);
  }

  /**
   * The entry of `file`, read from the index file if it is not parsed in memory; undefined if there is none or its line
   * is damaged. Values set to be made later are made, and kept made unless `toSave` (the save writes each once): an old
   * disc image's file, looked up once per file in it while each adds its region, made them all again at every lookup.
   */
  private entry(file: string, toSave = false): Entry | undefined {
    const held = this.files.get(file);
    if (held instanceof LaterValues) {
      const e = entryOf(held.identity, Object.fromEntries(held.values()));
      if (!toSave) this.files.set(file, e);
      return e;
    }
    if (typeof held !== 'number') return held;
    let e = this.recent.get(file);
    if (e) return e;
    e = this.disk.lines?.entryAt(held, file);
    if (this.recent.size >= RECENT_ENTRIES) this.recent.delete(this.recent.keys().next().value!);
    if (e) this.recent.set(file, e);
    return e;
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
    const sum = this.values(file, id)?.[field];
    if (sum) this.stats.hits++;
    else this.stats.misses++;
    return sum;
  }

  /**
   * Every value kept for a file under its identity: one lookup where make-template wants five (not counted in `stats`).
   * Not to be changed.
   */
  values(file: string, id: FileIdentity): Readonly<Record<string, string>> | undefined {
    const e = this.entry(file);
    return e && id.medium === undefined && sameIdentity(e, id) ? e.sums : undefined;
  }

  /** The checksum last recorded for this path, whatever its identity then (to say a file changed since). */
  previous(file: string, kind: ChecksumKind, offset?: number, length?: number | string): string | undefined {
    return this.entry(file)?.sums[HashIndex.field(kind, offset, length)];
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
    let e = this.entry(file);
    if (!e || !sameIdentity(e, id)) e = entryOf(id, {});
    for (const [field, value] of values) e.sums[field] = value;
    this.files.set(file, e);
    this.recent.delete(file);
    this.dirty.add(file);
    this.saveLater();
  }

  /** setValues, made when saved or looked up: make-template's, from the sums it holds anyway (see LaterValues). */
  setValuesLater(file: string, later: LaterValues): void {
    if (later.identity.medium !== undefined) return; // a device: see the class's comment
    const held = this.files.get(file);
    // (A file of several regions, an old disc image's: each region's values join the others'.)
    if (held !== undefined && !(held instanceof LaterValues && sameIdentity(held.identity, later.identity))) return this.setValues(file, later.identity, later.values());
    if (held === undefined) this.files.set(file, later);
    else if (held instanceof SeveralLater) held.parts.push(later);
    else this.files.set(file, new SeveralLater(held.identity, [held, later]));
    this.recent.delete(file);
    this.dirty.add(file);
    this.saveLater();
  }

  /** A save after the delay (nextSaveDelay), unless one is due already. */
  private saveLater(): void {
    if (!this.file || this.timer) return;
    this.timer = setTimeout(() => void this.save().catch(() => undefined), nextSaveDelay(this.lastSaveMs));
    this.timer.unref();
  }

  /**
   * Drops what is recorded for a file (its bytes were found not to match): the next lookup hashes it. With a
   * region (`offset`, `length` as in get), only that region's checksum: an old disc image holding one wrong
   * file keeps what is known of the others.
   */
  forget(file: string, region?: { kind: ChecksumKind; offset: number; length: number | string }): void {
    this.recent.delete(file);
    const e = region && this.entry(file);
    if (region && e) {
      delete e.sums[HashIndex.field(region.kind, region.offset, region.length)];
      this.files.set(file, e);
    } else if (region && !this.files.has(file)) return; // (the other regions another process recorded stay)
    else this.files.delete(file); // (a region of an entry whose line cannot be read: the whole entry goes)
    // A whole file is marked even when nothing is held: the next save drops the copy on disk, whoever wrote it. Before,
    // a forget of an entry whose line could not be read did nothing, and the save after it kept the wrong checksum.
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
    if (!this.file || (this.dirty.size === 0 && !this.fromLegacy)) return;
    const file = this.file;
    const changed = [...this.dirty];
    this.dirty.clear();
    // Another process's save holds it for as long as its save takes, refreshing it; one that does not come within the
    // time a lock goes stale is gone without: at worst the old race, never a wait without end.
    this.locks ??= cacheDirLocks(path.dirname(file));
    // What killed processes left in the cache (a save's lock file, `parts/tmp/HOSTTAG-PID-lock.spare`): a session's cache
    // removes it when it opens, but make-template opens none, and each make-template killed while it saved left one.
    await this.locks.cleanOnce();
    const lock = await this.locks.waitLock(`index-${path.basename(file)}`, LOCK_STALE_MS);
    const started = Date.now();
    try {
      await this.merged(file, changed);
    } catch (err) {
      for (const f of changed) this.dirty.add(f); // for the next save: a failed one (a full disk) dropped them for good
      throw err;
    } finally {
      this.lastSaveMs = Date.now() - started;
      await lock?.release();
    }
  }

  /**
   * Writes `changed` (paths set or forgotten) merged into what is on disk at `file`, read as it is now (another process
   * may have saved since), a line at a time; `files` then points at the new file's lines, but for entries set meanwhile.
   */
  private async merged(file: string, changed: string[]): Promise<void> {
    const ours = new Set(changed);
    // What the old file gave goes in only while no process has made this file: one that did read the same old file,
    // and an entry it forgot since (a wrong checksum) must not come back.
    const all = this.fromLegacy && !(await indexThere(file));
    await makeDirs(path.dirname(file));
    const tmp = `${file}.${ownerTag()}-${randomBytes(4).toString('hex')}.tmp`; // several sessions may save at once
    const unlist = removeAtExit(tmp); // (a signal during the save: it goes)
    let written: Awaited<ReturnType<typeof writeIndex>> | undefined;
    try {
      written = await writeIndex(tmp, async (w) => {
        // (A path forgotten is in `ours` and not in `files`: another process's copy of the wrong entry goes too.)
        for await (const [name, line] of savedEntries(file)) {
          if (ours.has(name)) continue;
          if (Buffer.isBuffer(line)) await w.copy(name, line);
          else await w.entry(name, line);
        }
        for (const name of all ? this.files.keys() : ours) {
          const e = this.entry(name, true);
          if (e) await w.entry(name, e);
        }
      });
      await rename(tmp, file);
    } catch (err) {
      await written?.lines.close().catch(() => undefined);
      await rm(tmp, { force: true }); // a full disk: the old index stays as it was, no half file beside it
      throw err;
    } finally {
      unlist();
    }
    // Entries set or forgotten while the file was written stay as they are, for the next save.
    const files = new Map<string, Held>(written.offsets);
    for (const name of this.dirty) {
      const held = this.files.get(name);
      if (held === undefined) files.delete(name);
      else files.set(name, held);
    }
    this.files = files;
    this.hold(written.lines);
    this.fromLegacy = false;
  }
}

/** How HashIndex holds an entry (see HashIndex.files). */
type Held = Entry | LaterValues | number;

/**
 * The name a value is kept under in a file's entry: `name` for the whole file, `name@offset+length` for a region
 * (`length` is a number, or a text naming several ranges: a fragmented file inside a disc image; see indexField).
 */
export function indexFieldName(name: string, offset?: number, length?: number | string): string {
  return offset === undefined ? name : `${name}@${offset}+${length}`;
}

/** Whether anything is at `file` (an index there that cannot be read is not to be passed over for the old one). */
function exists(file: string): Promise<boolean> {
  return lstat(file).then(() => true, (err: NodeJS.ErrnoException) => err.code !== 'ENOENT');
}
