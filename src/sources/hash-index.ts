import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { ChecksumKind } from '../format/checksum.js';
import { makeDirs } from '../util/make-dirs.js';

/**
 * The persistent record of checksums of local files (like jigdo-file-cache.db): keyed by path, size and
 * mtime, so a file is hashed once and a changed file is hashed again. Stored as JSON under the cache
 * directory, written atomically; concurrent writers merge what is on disk before replacing it.
 */
interface Entry {
  size: number;
  mtimeMs: number;
  /** `kind` or `kind@offset+length` → jigdo-base64 checksum. */
  sums: Record<string, string>;
}

interface IndexFile {
  version: 1;
  files: Record<string, Entry>;
}

const SAVE_DELAY_MS = 2000;

export class HashIndex {
  private files: Record<string, Entry> = {};
  private dirty = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  readonly stats = { hits: 0, misses: 0 };

  private constructor(readonly file: string | undefined) {}

  /** Loads the index at `file`; a missing or unreadable index starts empty (it is only a cache). */
  static async load(file: string | undefined): Promise<HashIndex> {
    const index = new HashIndex(file);
    if (file) index.files = (await readIndex(file)) ?? {};
    return index;
  }

  private static field(kind: ChecksumKind, offset?: number, length?: number): string {
    return offset === undefined ? kind : `${kind}@${offset}+${length}`;
  }

  get(file: string, size: number, mtimeMs: number, kind: ChecksumKind, offset?: number, length?: number): string | undefined {
    const e = this.files[file];
    const sum = e && e.size === size && e.mtimeMs === mtimeMs ? e.sums[HashIndex.field(kind, offset, length)] : undefined;
    if (sum) this.stats.hits++;
    else this.stats.misses++;
    return sum;
  }

  set(file: string, size: number, mtimeMs: number, kind: ChecksumKind, sum: string, offset?: number, length?: number): void {
    let e = this.files[file];
    if (!e || e.size !== size || e.mtimeMs !== mtimeMs) this.files[file] = e = { size, mtimeMs, sums: {} };
    e.sums[HashIndex.field(kind, offset, length)] = sum;
    this.dirty.add(file);
    if (this.file && !this.timer) {
      this.timer = setTimeout(() => void this.save().catch(() => undefined), SAVE_DELAY_MS);
      this.timer.unref();
    }
  }

  /** Writes the changed entries, merged into whatever another process saved meanwhile. */
  async save(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.file || this.dirty.size === 0) return;
    const changed = [...this.dirty];
    this.dirty.clear();
    const onDisk = (await readIndex(this.file)) ?? {};
    for (const f of changed) if (this.files[f]) onDisk[f] = this.files[f]!;
    this.files = { ...onDisk, ...this.files };
    await makeDirs(path.dirname(this.file));
    const tmp = `${this.file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`; // several sessions may save at once
    try {
      await writeFile(tmp, JSON.stringify({ version: 1, files: onDisk } satisfies IndexFile));
      await rename(tmp, this.file);
    } catch (err) {
      await rm(tmp, { force: true }); // a full disk: the old index stays as it was, no half file beside it
      throw err;
    }
  }
}

async function readIndex(file: string): Promise<Record<string, Entry> | undefined> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as IndexFile;
    return parsed.version === 1 && parsed.files && typeof parsed.files === 'object' ? parsed.files : undefined;
  } catch {
    return undefined;
  }
}
