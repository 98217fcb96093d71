import { open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { encodeB64 } from '../format/base64.js';
import { fsPath, shown } from '../format/byte-string.js';
import type { ChecksumKind } from '../format/checksum.js';
import { blockDeviceSize } from '../util/block-device.js';
import { JigdoError, errorMessage } from '../format/errors.js';
import { jigdoToMerge } from '../format/jigdo.js';
import { parseSum } from '../format/rsync-rolling.js';
import { loadMakeTemplateIndex, type HashIndex } from '../sources/hash-index.js';
import { listCandidates, type Candidate, type Listing } from './candidates.js';
import { SumSource } from './candidate-sums.js';
import { buildJigdo } from './jigdo-writer.js';
import type { Progress } from './progress.js';
import { findParts } from './find-parts.js';
import { withoutDuplicates } from './select.js';
import { Scanner, type CandidateSums } from './scanner.js';
import { CREATOR, writeTemplate, type PartEntry } from './template-writer.js';
import { removeAtExit } from '../util/exit-leftovers.js';
import { temporaryPath } from '../util/output-temporary.js';
import { writeAll } from '../util/write-all.js';
import { checkOutput } from '../build/output-file.js';

/** make-template (issue 9): image + candidate files → .jigdo + .template, as jigdo-file writes them. */
export interface MakeTemplateOptions {
  image: string;
  files: string[];
  jigdo: string;
  template: string;
  labels: Map<string, string>;
  uris: Map<string, string>;
  merge?: string;
  kind: ChecksumKind;
  minLength: number;
  compression: 'gzip' | 'bzip2';
  force: boolean;
  cacheDir: string;
  /** false: never read the image as a disc (--no-iso). */
  iso: boolean;
  progress: Progress;
  warn: (line: string) => void;
}

export interface MakeTemplateResult {
  mode: 'iso9660' | 'udf' | 'generic';
  imageSize: number;
  candidates: number;
  /** Candidate files read (not answered by the hash index). */
  reads: number;
  parts: number;
  matchedBytes: number;
  templateSize: number;
}

async function checkImage(image: string): Promise<number> {
  let st;
  try {
    st = await stat(fsPath(image));
  } catch (err) {
    throw new JigdoError(image, `cannot read the image: ${errorMessage(err)}`);
  }
  if (st.isDirectory()) throw new JigdoError(image, 'is a directory, not an image file');
  if (!st.isFile() && !st.isBlockDevice()) throw new JigdoError(image, 'is not a regular file');
  if (st.isFile()) return st.size;
  // A device (a disc in its drive, a loop device): stat says 0 bytes, which made the template of an empty image.
  return blockDeviceSize(st.rdev).catch((err: unknown) => {
    throw new JigdoError(image, `cannot tell the size of this device: ${errorMessage(err)}`);
  });
}

/**
 * Refuses outputs that would replace what must stay: one another (the same name), an existing file unless --force, and
 * never a device, a pipe or a folder, nor the image (build/output-file.ts checkOutput, as make-image
 * refuses them; before, `--force` put a regular file in place of `-j /dev/null` and the template over the image read).
 */
async function checkOutputs(opts: MakeTemplateOptions): Promise<void> {
  if (path.resolve(opts.jigdo) === path.resolve(opts.template)) throw new JigdoError(opts.jigdo, 'the .jigdo and the .template would be the same file');
  // (Not the file to merge: it is read before the outputs replace anything, and `--merge X.jigdo -j X.jigdo` adds an image.)
  const inputs = [{ what: 'image', path: opts.image }];
  for (const out of [opts.jigdo, opts.template]) {
    await checkOutput(out, inputs, opts.force, 'the template is made of');
    // Now, not after the scan: the .jigdo's folder missing was said of the template, once it was written.
    const folder = await stat(fsPath(path.dirname(out))).catch((err: unknown) => errorMessage(err));
    if (typeof folder === 'string' || !folder.isDirectory()) throw new JigdoError(out, `cannot write there: ${typeof folder === 'string' ? folder : `${shown(path.dirname(out))} is not a folder`}`);
  }
}

/** Whether `file` is what a make-template (ours or jigdo-file's) wrote as `kind`: its first bytes say so. */
async function earlierOutput(file: string, kind: 'jigdo' | 'template'): Promise<boolean> {
  const fh = await open(fsPath(file), 'r').catch(() => undefined);
  if (!fh) return false;
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(4096), 0, 4096, 0);
    const head = buffer.toString('latin1', 0, bytesRead);
    return kind === 'template' ? head.startsWith('JigsawDownload template ') : head.startsWith('# JigsawDownload') || /^\[Jigdo\]\r?$/m.test(head);
  } finally {
    await fh.close();
  }
}

/**
 * Which candidates to keep, by their identity as the walk found them, from the outputs that exist before the walk: an
 * output that is a candidate would be replaced by the template or .jigdo, so one that is the user's file (a part) is
 * refused, whatever its size; one that an earlier run wrote there (a tree given as `.//` with the outputs beside the
 * image) is no candidate, and is replaced, as jigdo-file replaces it.
 */
async function candidatesKept(opts: MakeTemplateOptions): Promise<(c: Candidate) => boolean> {
  const outputs = new Map<string, { out: string; earlier: boolean }>();
  for (const [out, kind] of [[opts.jigdo, 'jigdo'], [opts.template, 'template']] as const) {
    const st = await stat(fsPath(out)).catch(() => undefined);
    if (st) outputs.set(`${st.dev}:${st.ino}`, { out, earlier: await earlierOutput(out, kind) });
  }
  return (c) => {
    const hit = outputs.size > 0 ? outputs.get(`${c.identity.dev}:${c.identity.ino}`) : undefined;
    if (hit === undefined || (hit.earlier && c.ranges === undefined)) return hit === undefined;
    throw new JigdoError(hit.out, `is one of the candidate files${path.resolve(hit.out) === path.resolve(c.path) ? '' : ` (${shown(c.path)}: the same file)`}: not written`);
  };
}

/**
 * The lines of the file to merge into (--merge), read before any work. Gunzipped, as every command reads a .jigdo: the
 * gzip bytes of one of Debian's were copied ahead of the new sections, which readers then did not see (exit 0). Refused
 * if it is no .jigdo text (an ISO was copied in whole), or of the other checksum kind: its Version and keys, and the new
 * [Parts] lines of ours, made one [Parts] that no reader takes.
 */
async function mergeLines(file: string | undefined, kind: ChecksumKind): Promise<string[]> {
  if (!file) return [];
  const bytes = await readFile(fsPath(file)).catch((err: unknown) => {
    throw new JigdoError(file, `cannot read the file to merge: ${errorMessage(err)}`);
  });
  const merged = await jigdoToMerge(bytes, { kind: 'file', path: file });
  if (merged.kind && merged.kind !== kind) {
    throw new JigdoError(file, `a .jigdo of ${KIND_NAME[merged.kind]} (its Version line or [Parts] keys say so): a template of ${KIND_NAME[kind]} cannot be merged into it (make it with -C ${merged.kind})`);
  }
  return merged.lines;
}

const KIND_NAME = { md5: 'MD5', sha256: 'SHA-256' } as const;

interface Usable {
  candidates: Candidate[];
  sums: CandidateSums[];
}

/** The candidates' sums, read as the walk finds them (the walk runs on its own thread, ahead of the reads). */
async function candidateSums(opts: MakeTemplateOptions, listing: Listing, index: HashIndex, scanner: Scanner, kept: (c: Candidate) => boolean): Promise<Usable & { reads: number }> {
  const source = new SumSource(index, scanner, opts.kind, opts.minLength, opts.warn, (c) => opts.progress.add(c.size));
  opts.progress.start('checksums of candidate files', 0); // (the total grows as the walk goes on)
  for await (const group of listing.groups) {
    const usable = group.filter(kept).filter((c) => c.size >= opts.minLength);
    opts.progress.grow(usable.reduce((n, c) => n + c.size, 0));
    await source.add(usable);
  }
  const sums = await source.finish();
  opts.progress.stop();
  const usable: Usable = { candidates: [], sums: [] };
  source.candidates.forEach((c, i) => {
    if (!sums[i]) return;
    usable.candidates.push(c);
    usable.sums.push(sums[i]!);
  });
  return { ...usable, reads: source.reads };
}

/** The image's size and times when it was opened: a file written to during the run is refused at its end (see unchanged). */
type ImageStamp = { size: number; mtimeMs: number; ctimeMs: number } | undefined;

async function stampOf(image: FileHandle): Promise<ImageStamp> {
  const st = await image.stat();
  return st.isFile() ? { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs } : undefined; // (a device's say nothing)
}

/**
 * The image is as it was when opened. Its checksum is taken while it is scanned and its unmatched bytes are read again
 * for the template: a write in between gave a template that rebuilds no image, and exit 0.
 */
async function unchanged(opts: MakeTemplateOptions, image: FileHandle, before: ImageStamp): Promise<void> {
  const now = await stampOf(image);
  if (before && now && (now.size !== before.size || now.mtimeMs !== before.mtimeMs || now.ctimeMs !== before.ctimeMs)) {
    throw new JigdoError(opts.image, 'the image was written to while the template was made: run again once it no longer changes');
  }
}

/** The outputs' names must be free for a rename: one that is a folder failed the second rename after the first was done. */
async function renamable(out: string): Promise<void> {
  const st = await stat(fsPath(out)).catch(() => undefined);
  if (st?.isDirectory()) throw new JigdoError(out, 'is a folder: cannot write the output there');
}

/** Writes to temporary names beside the outputs; renames both only once both are complete. */
async function writeOutputs(opts: MakeTemplateOptions, merge: string[], image: FileHandle, imageSize: number, parts: PartEntry[], imageSum: () => Promise<Buffer>, u: Usable, chosen: number[], stamp: ImageStamp): Promise<number> {
  // Named after this process and host: a later run removes what a killed one left (killed-run.ts), and no other's.
  const tmpTemplate = temporaryPath(opts.template);
  const tmpJigdo = temporaryPath(opts.jigdo);
  const unlist = [removeAtExit(fsPath(tmpTemplate)), removeAtExit(fsPath(tmpJigdo))]; // (Ctrl-C while writing: both go)
  try {
    const out = await open(fsPath(tmpTemplate), 'wx');
    let result;
    try {
      opts.progress.start('writing the template', imageSize - parts.reduce((s, p) => s + p.length, 0));
      let last = 0;
      result = await writeTemplate({
        out, image, imageSize, parts, kind: opts.kind, compression: opts.compression, blockLength: opts.minLength, imageSum,
        onRaw: (n) => { opts.progress.add(n - last); last = n; },
      });
      await out.sync(); // on disk before it replaces the old one: a power cut must not leave an empty file in its place
    } finally {
      opts.progress.stop();
      await out.close();
    }
    const jigdo = buildJigdo({
      merge,
      version: opts.kind === 'md5' ? '1.2' : '2.0',
      generator: CREATOR,
      imageName: path.basename(opts.image),
      templateName: path.basename(opts.template),
      templateSum: encodeB64(result.templateSum),
      sumLabel: opts.kind === 'md5' ? 'Template-MD5Sum' : 'Template-SHA256Sum',
      parts: chosen.map((c, i) => ({ key: encodeB64(parts[i]!.sum), location: u.candidates[c]!.location, leaf: u.candidates[c]!.leaf })),
      labels: opts.labels,
      uris: opts.uris,
    });
    const cannot = (err: unknown): never => {
      throw new JigdoError(opts.jigdo, `cannot write the .jigdo: ${shown(errorMessage(err))}`);
    };
    const jf = await open(fsPath(tmpJigdo), 'wx').catch(cannot);
    try {
      await writeAll(jf, jigdo, 0).catch(cannot);
      await jf.sync().catch(cannot);
    } finally {
      await jf.close();
    }
    await unchanged(opts, image, stamp);
    await renamable(opts.template);
    await renamable(opts.jigdo);
    await rename(fsPath(tmpTemplate), fsPath(opts.template));
    await rename(fsPath(tmpJigdo), fsPath(opts.jigdo));
    return result.size;
  } catch (err) {
    // The .jigdo first: a .jigdo temporary without its template's is taken for complete by the next run (killed-run.ts).
    await rm(fsPath(tmpJigdo), { force: true });
    await rm(fsPath(tmpTemplate), { force: true });
    throw err instanceof JigdoError ? err : new JigdoError(opts.template, `cannot write the template: ${shown(errorMessage(err))}`);
  } finally {
    unlist.forEach((off) => off());
  }
}

export async function makeTemplate(opts: MakeTemplateOptions): Promise<MakeTemplateResult> {
  const imageSize = await checkImage(opts.image);
  // Its DESC would be 43 bytes, which no reader takes (jigdo-file's own wants 45: spec §2.4): said now, not by every
  // later command that reads the template.
  if (imageSize === 0) throw new JigdoError(opts.image, 'the image is empty: a template of nothing could not be read back (jigdo-file writes one that no reader accepts)');
  await checkOutputs(opts);
  const merge = await mergeLines(opts.merge, opts.kind);
  let image: FileHandle;
  try {
    image = await open(fsPath(opts.image), 'r');
  } catch (err) {
    throw new JigdoError(opts.image, `cannot read the image: ${errorMessage(err)}`);
  }
  const scanner = new Scanner();
  let listing: Listing | undefined;
  let saved = Promise.resolve();
  try {
    // The walk (on its own thread) and the hash index's parsing at once: each took seconds of a 100,000-file tree.
    listing = await listCandidates(opts.files, opts.warn);
    const stamp = await stampOf(image);
    const index = await loadMakeTemplateIndex(opts.cacheDir);
    const all = await candidateSums(opts, listing, index, scanner, await candidatesKept(opts));
    const kept = withoutDuplicates(all.candidates.map((c) => c.size), all.sums.map((s) => s.confirm.toString('latin1')));
    const u: Usable = { candidates: kept.map((i) => all.candidates[i]!), sums: kept.map((i) => all.sums[i]!) };
    // Saved while the image is scanned (on the workers): ~1 s of the main thread for a 100,000-file tree.
    saved = index.save().catch((err: unknown) => opts.warn(`cannot save the hash index: ${errorMessage(err)}`));
    if (u.candidates.length === 0) opts.warn('no candidate files: the whole image goes into the template');
    const found = await findParts({ opts, imageSize, candidates: u.candidates, sums: u.sums, image, scanner });
    const parts: PartEntry[] = found.chosen.map((m) => {
      const s = u.sums[m.candidate]!;
      parseSum(s.rsync); // 8 bytes, checked
      return { offset: m.offset, length: u.candidates[m.candidate]!.size, rsync: s.rsync, sum: s.sum };
    });
    const templateSize = await writeOutputs(opts, merge, image, imageSize, parts, found.imageSum, u, found.chosen.map((m) => m.candidate), stamp);
    return {
      mode: found.mode,
      imageSize,
      candidates: all.candidates.length,
      reads: all.reads,
      parts: parts.length,
      matchedBytes: parts.reduce((s, p) => s + p.length, 0),
      templateSize,
    };
  } finally {
    await listing?.close();
    await image.close();
    await scanner.close();
    await saved; // (a template that failed still leaves the checksums of the files read)
  }
}
