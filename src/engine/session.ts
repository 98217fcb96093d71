import path from 'node:path';
import { createHash } from 'node:crypto';
import { FileByteSource } from '../format/bytesource.js';
import { JigdoError, TemplateUnavailableError, UsageError, errorMessage } from '../format/errors.js';
import { parseJigdo, type JigdoFile, type JigdoImage } from '../format/jigdo.js';
import { describeLocation, locationFromUser } from '../format/location.js';
import { parseTemplate, type TemplateInfo } from '../format/template.js';
import { identityOf } from '../sources/file-identity.js';
import { loadSessionIndex, type HashIndex } from '../sources/hash-index.js';
import { LocalSources, type LocalTree } from '../sources/local-sources.js';
import { PartStore, type PartProvider } from '../sources/part-store.js';
import type { Network } from '../network/network.js';
import { resourceLoader, type RemoteLoader } from './jigdo-loader.js';
import { checkCacheDir } from './cache-dir.js';
import { checkTemplate, findTemplate, type TemplateChoice } from './template-file.js';
import { TemplateData } from '../sources/template-data.js';
import { SPILL_DIR } from '../cache/spill-name.js';
import { WorkerPool } from '../util/worker-pool.js';
import { ImageLayout } from '../image/layout.js';
import { DEFAULT_READER_OPTIONS, ImageReader, type ReaderOptions } from '../image/reader.js';

/**
 * The composition root: the one module that knows every layer. A command loads its .jigdo (loadJigdo),
 * picks an image (selectImage) and opens it (openImage), which wires format → sources → image reader;
 * the front ends (fuse/, build/, cli/) only ever see the ImageSession it returns.
 */

/** The source options every command takes. */
export interface SourceOptions extends TemplateChoice {
  local: LocalTree[];
  scan: string[];
  /** False: --scan files that are disc images are not looked into (`--no-scan-images`). */
  scanImages?: boolean;
  /** `--scan-deep FILE`: searched at every 512-byte boundary for parts. */
  scanDeep?: string[];
  cacheDir: string;
  /** Bytes of memory for decompressed template data and read-ahead together. */
  memory: number;
  log: (line: string) => void;
  /** Log one line when a part turns out to be unavailable (mounts do; `missing` reports by itself). */
  logMissing?: boolean;
  /**
   * The command's worker pool (bzip2, hashing), shared by all its images and its network. Absent: each
   * session makes its own and ends it on close.
   */
  pool?: WorkerPool;
  /** Reads a remote .jigdo or [Include] (the command's network); absent: URLs are refused. */
  loadRemote?: RemoteLoader;
  /** Extra providers (disk cache, mirrors): added by the network layer; see openImage for their place in the order. */
  extraProviders?: (ctx: ProviderContext) => PartProvider[] | Promise<PartProvider[]>;
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

/**
 * Reads and parses a .jigdo (path or URL, plain or gzipped) with its [Include]s; URLs only through
 * `loadRemote` (the command's network), so that nothing here reaches the network by itself.
 */
export async function loadJigdo(where: string, loadRemote?: RemoteLoader): Promise<JigdoFile> {
  const loc = locationFromUser(where);
  const load = resourceLoader(loadRemote);
  return parseJigdo(await load(loc), loc, load);
}

/**
 * Picks an [Image] by its Filename, its basename, or the name shown for it (imageFileName: `jte1.iso` for the
 * `stdio:jte1.iso` of a .jigdo xorriso wrote, which info, serve and make-image call it), or the first one.
 */
export function selectImage(jigdo: JigdoFile, name?: string): JigdoImage {
  if (!name) return jigdo.images[0]!;
  const found = jigdo.images.find((img) => img.filename === name || path.basename(img.filename) === name || imageFileName(img) === name);
  if (!found) {
    const names = jigdo.images.map((i) => (imageFileName(i) === i.filename ? i.filename : `${imageFileName(i)} (Filename=${i.filename})`));
    throw new UsageError(`${describeLocation(jigdo.location)} has no image named "${name}" (it has: ${names.join(', ')})`);
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
  /** How far ahead of a stream of the image its parts may be located: see fetchAhead. */
  locateAhead: number;
  /**
   * Verify once, for a job that checks its whole output (make-image: the image checksum): while on, copies
   * the .jigdo names (--local) and parts from mirrors that proved right are taken without hashing them first
   * (their `deferred` flag). Never on for a mount or `serve`: a part they serve is checked before its first
   * byte goes out. See docs/design.md, "What is verified when".
   */
  deferChecks(on: boolean): void;
  /** The whole output matched: what was taken unhashed is recorded as verified (hash index, cache names). */
  confirmDeferred(): Promise<void>;
  /** A copy taken unhashed from `provider` (PartStore's name for it) turned out wrong: its source is blamed. */
  rejected(key: string, provider: string): void;
  close(): Promise<void>;
}

/**
 * How far ahead of a reader parts are fetched, when the disk cache (its limit in force: --cache-size, or what the free
 * space allows) cannot hold all of the image's parts: a quarter of it for the reader's prefetch, half for make-image's
 * look-ups (StreamReach). Parts fetched further ahead were evicted before the reader came to them and fetched again:
 * --cache-size 10M with 50 MB of parts took 57.5 MB from the mirror; a review measured 1.5 GB for a `cp` of a 333 MB
 * image through a 20 MB cache. No bound when the cache holds every part, or there is none (`limit` undefined).
 */
function fetchAhead(layout: ImageLayout, limit: number | undefined): { locate: number; reader: Partial<ReaderOptions> } {
  let partBytes = 0;
  for (const p of layout.parts.values()) partBytes += p.length;
  if (limit === undefined || limit >= partBytes) return { locate: Infinity, reader: {} };
  const reach = Math.floor(limit / 4);
  const { prefetchBytes, prefetchMaxBytes } = DEFAULT_READER_OPTIONS;
  return { locate: Math.floor(limit / 2), reader: { prefetchBytes: Math.min(prefetchBytes, reach), prefetchMaxBytes: Math.min(prefetchMaxBytes, reach) } };
}

/**
 * Opens one image of a .jigdo: verifies and indexes the template (reading only its header, DESC and part
 * headers), builds the layout, and wires the sources in order: the local places the .jigdo names, the extra providers
 * at hand (the disk cache), the files the --scan walk found, old disc images, then the other extra providers (mirrors).
 */
export async function openImage(jigdo: JigdoFile, image: JigdoImage, opts: SourceOptions): Promise<ImageSession> {
  await checkCacheDir(opts.cacheDir);
  // A pool the command did not give is this session's own: ended with it (or at once if opening fails).
  const ownPool = opts.pool ? undefined : new WorkerPool();
  const pool = opts.pool ?? ownPool!;
  try {
    const session = await openWith(jigdo, image, opts, pool);
    if (!ownPool) return session;
    return { ...session, close: () => session.close().finally(() => ownPool.close()) };
  } catch (err) {
    await ownPool?.close();
    throw err;
  }
}

async function openWith(jigdo: JigdoFile, image: JigdoImage, opts: SourceOptions, pool: WorkerPool): Promise<ImageSession> {
  const index = await loadSessionIndex(opts.cacheDir);
  const copyIsRight = { matches: (file: string) => checkTemplate(file, image, index, pool).then(() => true, () => false), log: opts.log };
  const templatePath = await findTemplate(jigdo, image, opts, copyIsRight);

  const src = await FileByteSource.open(templatePath).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw new JigdoError(templatePath, err.message);
    // Not there yet is not a bad file, unless the user named that file (--template).
    if (opts.template) throw new JigdoError(templatePath, 'template not found (given by --template)');
    throw new TemplateUnavailableError(templatePath, `template not found (named by ${describeLocation(jigdo.location)})`);
  });
  try {
    // Checked while it is parsed (the hash runs on a pool thread, which first has to start: most of a mount's
    // start-up with an empty cache); a template that fails its checksum is named for that, whatever the parse says.
    // The check is of the file opened here, which is what is read: the name may lead to another by now.
    const opened = { identity: identityOf(await src.stat()), fd: src.fd };
    const [checked, parsed] = await Promise.allSettled([checkTemplate(templatePath, image, index, pool, opened), parseTemplate(src)]);
    if (checked.status === 'rejected') throw checked.reason;
    if (parsed.status === 'rejected') throw parsed.reason;
    const template = parsed.value;
    if (jigdo.parts.size > 0 && template.desc.imageChecksumKind !== jigdo.checksumKind) {
      throw new JigdoError(templatePath, `template uses ${template.desc.imageChecksumKind} but the .jigdo lists ${jigdo.checksumKind} parts`);
    }
    const layout = ImageLayout.fromDesc(template.desc, templatePath);
    const spillId = createHash('sha256').update(template.desc.imageSum).update(String(template.fileSize)).digest('hex').slice(0, 32);
    const eviction = opts.network?.cache.eviction; // (finished spills are cache files: counted against --cache-size)
    const raw = new TemplateData(src, template, {
      // A quarter: the reader keeps at most 24 read-ahead blocks of its half, and a template with more raw data
      // than this fills its LRU whole (peak RSS ≤ 200 MB at the default 128M whatever the image: BENCHMARKS.md).
      memoryLimit: Math.max(8 << 20, Math.floor(opts.memory / 4)),
      spillDir: path.join(opts.cacheDir, SPILL_DIR, spillId),
      pool,
      admit: eviction && ((bytes, place) => eviction.admit(bytes, place)),
    });
    const localOpts = { trees: opts.local, scan: opts.scan, scanImages: opts.scanImages, scanDeep: opts.scanDeep, log: opts.log };
    const local = new LocalSources(jigdo, layout, template.desc, localOpts, index, pool);
    const extra = opts.extraProviders ? await opts.extraProviders({ jigdo, layout, local, index, pool }) : [];
    // LocalSources names the copies it rejects itself (recheck), so its providers need no `rejected`.
    const deferring = { deferChecks: (on: boolean) => local.deferChecks(on), confirmDeferred: async () => local.confirmDeferred() };
    // Local copies in two steps, one name: the places the .jigdo names, then what the --scan walk found (see atHand).
    const namedProvider: PartProvider = { name: 'local', find: (key) => local.findNamed(key), ...deferring };
    const scannedProvider: PartProvider = { name: 'local', find: (key) => local.findScanned(key) };
    // A part an old image gave and could not give again (a disc swapped, an I/O error) no longer counts as from it.
    const imageProvider: PartProvider = { name: 'image', find: (key) => local.findInImages(key), unreadable: (key, copy) => local.images.noteLost(copy.path, key) };
    const atHand = extra.filter((p) => p.atHand === true);
    const providers = [namedProvider, ...atHand, scannedProvider, imageProvider, ...extra.filter((p) => !atHand.includes(p))];
    const parts = new PartStore(layout, providers, opts.log, opts.logMissing ?? false);
    const ahead = fetchAhead(layout, await eviction?.limitInForce());
    const reader = new ImageReader(layout, raw, parts, { readaheadMemory: Math.max(4 << 20, Math.floor(opts.memory / 2)), ...ahead.reader });
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
      locateAhead: ahead.locate,
      deferChecks: (on) => providers.forEach((p) => p.deferChecks?.(on)),
      confirmDeferred: async () => {
        for (const p of providers) await p.confirmDeferred?.();
      },
      rejected: (key, provider) => providers.find((p) => p.name === provider)?.rejected?.(key),
      close: async () => {
        await parts.close();
        await raw.close();
        await src.close();
        // Said, not swallowed: a make-image onto a full cache disk saved nothing and exited 0 without a word (a probe).
        await index.save().catch((err: unknown) => opts.log(`cache: cannot save the hash index ${index.file ?? ''}: ${errorMessage(err)}`));
      },
    };
  } catch (err) {
    await src.close();
    throw err;
  }
}
