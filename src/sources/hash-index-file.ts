import { constants } from 'node:fs';
import { lstat, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fileLinesAt } from '../util/file-lines.js';
import { openRegular, withRegularFile } from '../util/open-regular.js';
import { ownerDead } from '../util/pid.js';
import { IndexLines, IndexWriter, MAX_LINE, parseLine, pathOfLine, tooDense, wellFormed, type Entry } from './hash-index-lines.js';

/*
 * The hash index's file (see HashIndex): its format, read and written, and the temporary copies its saves leave.
 */

/** Index files and their temporary copies are private: they list which local files we hashed. */
const PRIVATE_FILE_MODE = 0o600;

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

/** Whether an index file is at `file` (a regular file: see openRegular). */
export async function indexThere(file: string): Promise<boolean> {
  return withRegularFile(file, constants.O_RDONLY, async () => true).catch(() => false);
}

/** Which entries of an index file a process keeps (the others are not read into memory); all when undefined. */
export type KeepEntry = ((entry: Entry) => boolean) | undefined;

/**
 * A loaded index file: each path's entry, or where its line begins in `lines` (the file, held open). Version 3 read
 * without `keep` is held so; with `keep` (an index of versions before, whose entries are sorted by kind) and version 2
 * (one JSON document), entries are parsed.
 */
export interface LoadedIndex {
  entries: Map<string, Entry | number>;
  lines?: IndexLines;
}

/** The index file's entries (those `keep` keeps); undefined if it is missing, unreadable or not ours. */
export async function readIndex(file: string, keep?: KeepEntry): Promise<LoadedIndex | undefined> {
  const fh = await openRegular(file, constants.O_RDONLY).catch(() => undefined); // (only a regular file: a FIFO there hung every run)
  if (!fh) return undefined;
  let held = false;
  try {
    if (!(await isVersion3(fh))) {
      const entries = await readLegacyIndex(fh, keep);
      return entries && { entries };
    }
    // Line by line, a damaged one is dropped and the rest kept (looked up, a damaged line is a missing entry).
    const entries = new Map<string, Entry | number>();
    for await (const [line, at] of fileLinesAt(fh, HEADER.length, MAX_LINE, true)) {
      const parsed = keep ? parseLine(line) : undefined;
      const name = keep ? parsed?.[0] : pathOfLine(line)?.path;
      if (name === undefined || entries.has(name) || (keep && !keep(parsed![1]))) continue;
      entries.set(name, parsed ? parsed[1] : at);
    }
    if (keep) return { entries };
    held = true;
    return { entries, lines: new IndexLines(fh) };
  } catch {
    return undefined;
  } finally {
    if (!held) await fh.close().catch(() => undefined);
  }
}

/**
 * What a save carries over of the index file as it is now (another process may have saved since): each line of version 3
 * as it is, each entry of version 2 parsed; nothing if it is missing or not an index.
 */
export async function* savedEntries(file: string): AsyncGenerator<[name: string, line: Buffer | Entry]> {
  const fh = await openRegular(file, constants.O_RDONLY).catch(() => undefined);
  if (!fh) return;
  try {
    if (!(await isVersion3(fh))) {
      yield* (await readLegacyIndex(fh, undefined).catch(() => undefined)) ?? [];
      return;
    }
    for await (const [line] of fileLinesAt(fh, HEADER.length, MAX_LINE, true)) {
      const at = pathOfLine(line);
      if (at && !tooDense(line.subarray(at.end))) yield [at.path, line];
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * Writes a new index file at `tmp` (private; it must not exist) of the lines `fill` gives the writer; returns where each
 * path's line begins, and the file held open to read them.
 */
export async function writeIndex(tmp: string, fill: (w: IndexWriter) => Promise<void>): Promise<{ offsets: Map<string, number>; lines: IndexLines }> {
  const fh = await open(tmp, 'wx+', PRIVATE_FILE_MODE);
  try {
    const w = new IndexWriter(fh, HEADER);
    await fill(w);
    await w.flush();
    return { offsets: w.offsets, lines: new IndexLines(fh) };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

async function isVersion3(fh: FileHandle): Promise<boolean> {
  const head = Buffer.alloc(HEADER.length);
  await fh.read(head, 0, head.length, 0);
  return head.toString('latin1') === HEADER;
}

/** The entries of an index file of version 2 (one JSON document, read whole); undefined if it is not one (see tooDense). */
async function readLegacyIndex(fh: FileHandle, keep: KeepEntry): Promise<Map<string, Entry> | undefined> {
  const text = await fh.readFile();
  if (tooDense(text)) return undefined;
  const parsed = JSON.parse(text.toString('utf8')) as LegacyIndexFile;
  if (parsed?.version !== LEGACY_VERSION || !parsed.files || typeof parsed.files !== 'object') return undefined;
  const entries = new Map<string, Entry>();
  for (const [name, entry] of Object.entries(parsed.files as Record<string, unknown>)) {
    const ok = wellFormed(entry);
    if (ok && (!keep || keep(ok))) entries.set(name, ok);
  }
  return entries;
}
