import { existsSync } from 'node:fs';
import path from 'node:path';
import { open, stat } from 'node:fs/promises';
import { fsPath } from '../format/byte-string.js';
import { checksumKey, type ChecksumKind } from '../format/checksum.js';
import { JigdoError, TemplateUnavailableError, errorMessage } from '../format/errors.js';
import type { JigdoFile, JigdoImage } from '../format/jigdo.js';
import { baseName, describeLocation, resolveReference, type Location } from '../format/location.js';
import type { FileIdentity } from '../sources/file-identity.js';
import type { HashIndex } from '../sources/hash-index.js';
import { verifyWholeFile } from '../sources/verified-copy.js';
import { hashOpenFile } from '../util/hash-open-file.js';
import type { WorkerPool } from '../util/worker-pool.js';

/**
 * The template file of an image: which file it is (`--template`, a local Template=, a local copy of a
 * remote one, or a download) and whether it is the one the .jigdo names (its checksum). Kept apart from
 * the wiring because it is the one place that decides which local file a (possibly remote) .jigdo reads.
 */

/** How a command lets the template be chosen: `--template FILE`, and how a remote one is fetched. */
export interface TemplateChoice {
  /** `--template FILE`: use this template instead of the one the .jigdo names. */
  template?: string;
  /**
   * Resolves a remote template location to a local file (the network: cached, or downloaded and verified).
   * `matches` tells a cached copy that went bad on the disk (it is then fetched again).
   */
  fetchTemplate?: (loc: Location, image: JigdoImage, matches?: (file: string) => Promise<boolean>) => Promise<string>;
  /** The network is in use (not --offline): a local copy that fails its checksum may give way to the download. */
  online?: boolean;
}

/** Where the template is: resolved against the .jigdo; local templates must exist. */
function templateLocation(jigdo: JigdoFile, image: JigdoImage): Location {
  const loc = resolveReference(image.template, jigdo.location);
  if (!loc) throw new JigdoError(describeLocation(jigdo.location), `Template=${image.template} points outside what a remote .jigdo may name`);
  return loc;
}

/**
 * The local template file: `--template`, a local Template=, or (like jigdo-lite) a copy named after the
 * remote template's basename beside the .jigdo or in the current directory; else it is downloaded.
 */
export async function findTemplate(jigdo: JigdoFile, image: JigdoImage, opts: TemplateChoice, copyIsRight?: CopyCheck): Promise<string> {
  const file = await templateFile(jigdo, image, opts, copyIsRight);
  // A device or FIFO (`Template=/dev/zero`) would be hashed or waited on without end. A missing file is
  // reported where it is opened.
  const st = await stat(fsPath(file)).catch(() => undefined);
  if (st && !st.isFile()) throw new JigdoError(file, `cannot be used as the template: it is ${st.isDirectory() ? 'a folder' : st.isFIFO() ? 'a FIFO' : 'a device or socket'}, not a regular file`);
  return file;
}

/**
 * Whether a local copy of a remote template has the checksum the .jigdo gives (false also when it gives none), and
 * where to say that one is passed over.
 */
export interface CopyCheck {
  matches(file: string): Promise<boolean>;
  log(line: string): void;
}

async function templateFile(jigdo: JigdoFile, image: JigdoImage, opts: TemplateChoice, copyIsRight?: CopyCheck): Promise<string> {
  if (opts.template) return path.resolve(opts.template);
  const tloc = templateLocation(jigdo, image);
  if (tloc.kind === 'file') return tloc.path;
  const checked = (image.templateMd5 || image.templateSha256) && opts.fetchTemplate && opts.online && copyIsRight;
  for (const candidate of localTemplateCopies(jigdo, image, tloc)) {
    if (!(await isFile(candidate))) continue;
    // A copy left by an older build of the same name (a weekly image's template keeps its name): the download, not
    // a failed run. Offline, the copy is taken, and its checksum fails it with the reason.
    if (checked && !(await copyIsRight.matches(candidate))) {
      copyIsRight.log(`${candidate}: not the template the .jigdo names (another checksum): using ${tloc.url} instead`);
      continue;
    }
    return candidate;
  }
  if (opts.fetchTemplate) return opts.fetchTemplate(tloc, image, copyIsRight?.matches);
  throw new TemplateUnavailableError(tloc.url, 'template is remote and no network access is configured (use --template FILE)');
}

/**
 * Where jigdo-lite would look for a copy of a remote template: its basename beside a local .jigdo, and in
 * the current directory. The name comes from a URL the .jigdo wrote: it must be one plain file name once
 * decoded (never `..` or `a/b`: see baseName), and a remote .jigdo, which does not decide what local
 * files we read, gets the copy only when it gives the template's checksum (checked before use).
 */
function localTemplateCopies(jigdo: JigdoFile, image: JigdoImage, tloc: Location): string[] {
  let name: string | undefined;
  try {
    name = baseName(tloc);
  } catch (err) {
    throw new JigdoError(describeLocation(jigdo.location), `Template=${image.template}: ${errorMessage(err)}`);
  }
  if (!name) return [];
  if (jigdo.location.kind === 'url') return image.templateMd5 || image.templateSha256 ? [path.resolve(name)] : [];
  return [path.join(path.dirname(jigdo.location.path), name), path.resolve(name)];
}

async function isFile(file: string): Promise<boolean> {
  return stat(fsPath(file)).then((st) => st.isFile(), () => false);
}

/**
 * Templates up to this size are hashed on the calling thread. At a mount's start-up with an empty cache the pool's
 * first thread took ~90 ms to start before hashing a 7.5 MB template (~15 ms of MD5): the longest step before the
 * kernel mount (BENCHMARKS.md, "Start-up: one bundle"). Nothing is served yet for those few milliseconds to wait on.
 */
export const HASH_HERE_MAX = 32 << 20;

/** The template's hash: here when it is at most HASH_HERE_MAX bytes, else on the pool. Asked only when the index does not know it. */
async function hashTemplate(file: string, kind: ChecksumKind, pool: WorkerPool): Promise<Buffer> {
  const fh = await open(fsPath(file), 'r');
  try {
    if ((await fh.stat()).size > HASH_HERE_MAX) return await pool.hashFile(file, kind);
    return await hashOpenFile(fh, kind);
  } finally {
    await fh.close();
  }
}

/** A name for an open descriptor that any thread of this process can open, or undefined where /proc is not mounted. */
function descriptorPath(fd: number): string | undefined {
  const name = `/proc/self/fd/${fd}`;
  return existsSync(name) ? name : undefined;
}

/**
 * Checks the template file against Template-MD5Sum / Template-SHA256Sum, remembering the result. `opened`: the
 * open file that will be read, which is what is checked (verifyWholeFile), whatever the name leads to by then.
 */
export async function checkTemplate(file: string, image: JigdoImage, index: HashIndex, pool: WorkerPool, opened?: { identity: FileIdentity; fd: number }): Promise<void> {
  const expected: Array<[ChecksumKind, Buffer]> = [];
  if (image.templateSha256) expected.push(['sha256', image.templateSha256]);
  if (image.templateMd5) expected.push(['md5', image.templateMd5]);
  if (expected.length === 0) return; // libjte/jigdo-file always write one; hand-made files may not
  const through = opened && { identity: opened.identity, path: descriptorPath(opened.fd) };
  if (await verifyWholeFile(index, (f, kind) => hashTemplate(f, kind, pool), file, expected, through)) return; // either one matching is enough, as in jigdo-lite
  const [kind, sum] = expected[0]!;
  throw new JigdoError(file, `template ${kind.toUpperCase()} checksum does not match the .jigdo (expected ${checksumKey(sum)}): wrong or corrupt template`);
}
