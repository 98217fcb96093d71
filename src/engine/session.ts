import { homedir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { FileByteSource } from '../format/bytesource.js';
import { checksumKey, type ChecksumKind } from '../format/checksum.js';
import { JigdoError, UsageError, errorMessage } from '../format/errors.js';
import { parseJigdo, type JigdoFile, type JigdoImage } from '../format/jigdo.js';
import { baseName, describeLocation, locationFromUser, resolveReference, type Location } from '../format/location.js';
import { stat } from 'node:fs/promises';
import { parseTemplate, type TemplateInfo } from '../format/template.js';
import { HashIndex } from '../sources/hash-index.js';
import { verifyWholeFile } from '../sources/verified-copy.js';
import { LocalSources, type LocalTree } from '../sources/local-sources.js';
import { PartStore, type PartProvider } from '../sources/part-store.js';
import type { Network } from '../network/network.js';
import { loadResource } from './jigdo-loader.js';
import { TemplateData } from '../sources/template-data.js';
import { workerPool, type WorkerPool } from '../util/worker-pool.js';
import { ImageLayout } from '../image/layout.js';
import { ImageReader } from '../image/reader.js';
import { makeDirs } from '../util/make-dirs.js';

/** The source options every command takes. */
export interface SourceOptions {
  local: LocalTree[];
  scan: string[];
  cacheDir: string;
  /** Bytes of memory for decompressed template data and read-ahead together. */
  memory: number;
  log: (line: string) => void;
  /** Log one line when a part turns out to be unavailable (mounts do; `missing` reports by itself). */
  logMissing?: boolean;
  /** `--template FILE`: use this template instead of the one the .jigdo names. */
  template?: string;
  /** Extra providers tried after local copies (disk cache, mirrors): added by the network layer. */
  extraProviders?: (ctx: ProviderContext) => PartProvider[] | Promise<PartProvider[]>;
  /** Resolves a template location to a local file (downloading it when remote). */
  fetchTemplate?: (loc: Location, image: JigdoImage, opts: SourceOptions) => Promise<string>;
  /** The network layer behind those hooks (its `stats()` are for `status`); absent when not wired. */
  network?: Network;
}

export interface ProviderContext {
  jigdo: JigdoFile;
  layout: ImageLayout;
  local: LocalSources;
  index: HashIndex;
  pool: WorkerPool;
}

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache');
  return path.join(base, 'jigdofs');
}

/** Reads and parses a .jigdo (path or URL, plain or gzipped) with its [Include]s. */
export async function loadJigdo(where: string): Promise<JigdoFile> {
  const loc = locationFromUser(where);
  return parseJigdo(await loadResource(loc), loc, loadResource);
}

/** Picks an [Image] by its Filename (or basename), or the first one. */
export function selectImage(jigdo: JigdoFile, name?: string): JigdoImage {
  if (!name) return jigdo.images[0]!;
  const found = jigdo.images.find((img) => img.filename === name || path.basename(img.filename) === name);
  if (!found) {
    throw new UsageError(`${describeLocation(jigdo.location)} has no image named "${name}" (it has: ${jigdo.images.map((i) => i.filename).join(', ')})`);
  }
  return found;
}

/**
 * The image's file name as shown to users: the leaf of Filename, without a `stdio:` prefix. parseJigdo
 * refuses a Filename whose leaf is not a plain name; an image made some other way gets a safe default.
 */
export function imageFileName(image: JigdoImage): string {
  const leaf = image.filename.replace(/^stdio:/, '').split('/').pop()!;
  return leaf === '' || leaf === '.' || leaf === '..' ? 'image.iso' : leaf;
}

/** Where the template is: resolved against the .jigdo; local templates must exist. */
export function templateLocation(jigdo: JigdoFile, image: JigdoImage): Location {
  const loc = resolveReference(image.template, jigdo.location);
  if (!loc) throw new JigdoError(describeLocation(jigdo.location), `Template=${image.template} points outside what a remote .jigdo may name`);
  return loc;
}

/**
 * The local template file: `--template`, a local Template=, or (like jigdo-lite) a copy named after the
 * remote template's basename beside the .jigdo or in the current directory; else it is downloaded.
 */
async function findTemplate(jigdo: JigdoFile, image: JigdoImage, opts: SourceOptions): Promise<string> {
  const file = await templateFile(jigdo, image, opts);
  // A device or FIFO (`Template=/dev/zero`) would be hashed or waited on without end. A missing file is
  // reported where it is opened.
  const st = await stat(file).catch(() => undefined);
  if (st && !st.isFile()) throw new JigdoError(file, `cannot be used as the template: it is ${st.isDirectory() ? 'a folder' : st.isFIFO() ? 'a FIFO' : 'a device or socket'}, not a regular file`);
  return file;
}

async function templateFile(jigdo: JigdoFile, image: JigdoImage, opts: SourceOptions): Promise<string> {
  if (opts.template) return path.resolve(opts.template);
  const tloc = templateLocation(jigdo, image);
  if (tloc.kind === 'file') return tloc.path;
  for (const candidate of localTemplateCopies(jigdo, image, tloc)) if (await isFile(candidate)) return candidate;
  if (opts.fetchTemplate) return opts.fetchTemplate(tloc, image, opts);
  throw new JigdoError(tloc.url, 'template is remote and no network access is configured (use --template FILE)');
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
  return stat(file).then((st) => st.isFile(), () => false);
}

/** Checks the template file against Template-MD5Sum / Template-SHA256Sum, remembering the result. */
async function checkTemplate(file: string, image: JigdoImage, index: HashIndex, pool: WorkerPool): Promise<void> {
  const expected: Array<[ChecksumKind, Buffer]> = [];
  if (image.templateSha256) expected.push(['sha256', image.templateSha256]);
  if (image.templateMd5) expected.push(['md5', image.templateMd5]);
  if (expected.length === 0) return; // libjte/jigdo-file always write one; hand-made files may not
  if (await verifyWholeFile(index, (f, kind) => pool.hashFile(f, kind), file, expected)) return; // either one matching is enough, as in jigdo-lite
  const [kind, sum] = expected[0]!;
  throw new JigdoError(file, `template ${kind.toUpperCase()} checksum does not match the .jigdo (expected ${checksumKey(sum)}): wrong or corrupt template`);
}

/** Everything needed to read one image. */
export interface ImageSession {
  jigdo: JigdoFile;
  image: JigdoImage;
  name: string;
  templatePath: string;
  template: TemplateInfo;
  layout: ImageLayout;
  reader: ImageReader;
  parts: PartStore;
  local: LocalSources;
  raw: TemplateData;
  index: HashIndex;
  pool: WorkerPool;
  close(): Promise<void>;
}

/**
 * The cache directory exists (made if need be); otherwise one clear error. A read-only one is accepted:
 * lookups work, and what cannot be stored says so where it happens.
 */
export async function checkCacheDir(dir: string): Promise<void> {
  try {
    await makeDirs(dir);
  } catch (err) {
    throw new JigdoError(dir, `cannot be used as the cache directory: ${errorMessage(err)}`);
  }
}

/**
 * Opens one image of a .jigdo: verifies and indexes the template (reading only its header, DESC and part
 * headers), builds the layout, and wires the sources in order: local copies, then any extra providers.
 */
export async function openImage(jigdo: JigdoFile, image: JigdoImage, opts: SourceOptions): Promise<ImageSession> {
  await checkCacheDir(opts.cacheDir);
  const pool = workerPool();
  const index = await HashIndex.load(path.join(opts.cacheDir, 'hash-index.json'));
  const templatePath = await findTemplate(jigdo, image, opts);

  const src = await FileByteSource.open(templatePath).catch((err: NodeJS.ErrnoException) => {
    throw new JigdoError(templatePath, err.code === 'ENOENT' ? `template not found (named by ${describeLocation(jigdo.location)})` : err.message);
  });
  try {
    await checkTemplate(templatePath, image, index, pool);
    const template = await parseTemplate(src);
    if (jigdo.parts.size > 0 && template.desc.imageChecksumKind !== jigdo.checksumKind) {
      throw new JigdoError(templatePath, `template uses ${template.desc.imageChecksumKind} but the .jigdo lists ${jigdo.checksumKind} parts`);
    }
    const layout = ImageLayout.fromDesc(template.desc);
    const spillId = createHash('sha256').update(template.desc.imageSum).update(String(template.fileSize)).digest('hex').slice(0, 32);
    const raw = new TemplateData(src, template, {
      memoryLimit: Math.max(8 << 20, Math.floor(opts.memory / 2)),
      spillDir: path.join(opts.cacheDir, 'inflated', spillId),
      pool,
    });
    const local = new LocalSources(jigdo, layout, template.desc, { trees: opts.local, scan: opts.scan, log: opts.log }, index, pool);
    const extra = opts.extraProviders ? await opts.extraProviders({ jigdo, layout, local, index, pool }) : [];
    const localProvider: PartProvider = { name: 'local', find: (key) => local.find(key) };
    const parts = new PartStore(layout, [localProvider, ...extra], opts.log, opts.logMissing ?? false);
    const reader = new ImageReader(layout, raw, parts, { readaheadMemory: Math.max(4 << 20, Math.floor(opts.memory / 2)) });
    return {
      jigdo,
      image,
      name: imageFileName(image),
      templatePath,
      template,
      layout,
      reader,
      parts,
      local,
      raw,
      index,
      pool,
      close: async () => {
        await parts.close();
        await raw.close();
        await src.close();
        await index.save().catch(() => undefined);
      },
    };
  } catch (err) {
    await src.close();
    throw err;
  }
}
