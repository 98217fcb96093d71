/**
 * Test fixtures built with the real tools (xorriso + libjte, jigdo-file, mkfs.ext4).
 *
 * One small deterministic file tree is turned into an ISO and an ext4 image, and those into
 * .jigdo/.template pairs of every flavour jigdofs must read (spec §2.9): jigdo-file md5/sha256 ×
 * gzip/bzip2, libjte md5/gzip (with zero-length and tiny parts) and sha256/bzip2, an ext4 image for
 * loop-mount tests, and a template without any parts. Every variant except the one jigdo-file
 * cannot finish (spec §6.3) is checked by rebuilding it with `jigdo-file make-image`.
 *
 * The result is shared: built once per fixture version into os.tmpdir()/jigdofs-fixtures-v1-<hash>
 * (staged in a temporary directory, then renamed into place, so readers never see a half-built
 * set), reused by later processes, and memoised per process. Treat everything in it as READ-ONLY;
 * copy a file before changing it (see jigdoWithPartsUri).
 *
 * Layout of the fixture directory (all paths in the manifest are relative to it, so the directory
 * can be renamed after the build):
 *
 *   tree/                 root of every image
 *     parts/              = partsDir: the files a [Parts] line may point at (the "mirror")
 *     raw/                in the images but never a part: ends up in the template's raw data
 *   image.iso             xorriso -as mkisofs -r (used by the jf-* and nomatch variants)
 *   <variant>.jigdo       [Servers] Parts=PARTS_URI (libjte/nomatch output patched, see below)
 *   <variant>.orig.jigdo  the .jigdo exactly as the producer wrote it
 *   <variant>.template
 *   jte-*.iso, ext4.img   images of the variants that have their own image
 *   manifest.json         the FixtureSet, with relative paths
 */
import { execFile } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import {
  access, constants, copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, rmdir, stat, utimes, writeFile,
} from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Bump when the layout or the meaning of the manifest changes. */
export const FIXTURE_VERSION = 'v1';
/** Label used in every .jigdo for the parts directory. */
export const PARTS_LABEL = 'Parts';
/** What `Parts=` points at in every `<variant>.jigdo`; tests usually replace it (jigdoWithPartsUri). */
export const PARTS_URI = 'http://127.0.0.1:8765/parts/';
/** All timestamps (xorriso, mkfs.ext4, file mtimes). */
export const SOURCE_DATE_EPOCH = 1700000000;
/** jigdo-Base64 MD5 of the empty file (spec §4.5). */
export const EMPTY_MD5_B64 = '1B2M2Y8AsgTpgAmY7PhCfg';

export type VariantName =
  | 'jf-md5-gzip'
  | 'jf-sha256-gzip'
  | 'jf-md5-bzip2'
  | 'jf-sha256-bzip2'
  | 'jte-md5-gzip'
  | 'jte-sha256-bzip2'
  | 'ext4'
  | 'nomatch';

export const VARIANT_NAMES: readonly VariantName[] = [
  'jf-md5-gzip', 'jf-sha256-gzip', 'jf-md5-bzip2', 'jf-sha256-bzip2',
  'jte-md5-gzip', 'jte-sha256-bzip2', 'ext4', 'nomatch',
];

export interface FixtureVariant {
  name: VariantName;
  producer: 'jigdo-file' | 'libjte';
  checksum: 'md5' | 'sha256';
  compression: 'gzip' | 'bzip2';
  /** .jigdo whose [Servers] has `Parts=PARTS_URI` (and, for libjte, Filename/Template made local). */
  jigdo: string;
  /** .jigdo byte-for-byte as jigdo-file / xorriso wrote it. */
  jigdoOriginal: string;
  template: string;
  /** The image this template describes (libjte variants have their own, written by xorriso). */
  image: string;
  imageMd5: string;
  imageSha256: string;
  imageSize: number;
  /** Directory that the `Parts` label stands for; every needed part is below it. */
  partsDir: string;
  /** true when `jigdo-file make-image` rebuilt `image` from template + partsDir at build time. */
  makeImageVerified: boolean;
  /** Quirks worth knowing in tests (why not verified, what was patched, ...). */
  notes: string[];
}

export interface FixtureFile {
  /** Path relative to `tree`, with '/' separators, e.g. `parts/pool/c-200k.bin`. */
  path: string;
  absPath: string;
  size: number;
  md5: string;
  sha256: string;
  /** Below partsDir, i.e. offered as a part (jigdo-file still skips files < 1024 bytes). */
  isPart: boolean;
}

export interface FixtureSet {
  version: string;
  dir: string;
  /** Root of every image. */
  tree: string;
  /** = every variant's partsDir (tree/parts). */
  partsDir: string;
  partsLabel: string;
  partsUri: string;
  /** The plain ISO (xorriso without jigdo options). */
  iso: string;
  files: FixtureFile[];
  variants: Record<VariantName, FixtureVariant>;
  /** Wall time (ms) of the build that produced this directory; a reused set reports the original build. */
  buildMs: number;
}

// ------------------------------------------------------------------------------------------------
// public entry points

const memo = new Map<string, Promise<FixtureSet>>();

/**
 * Build (or reuse) the fixture set. Without `dir` the shared, versioned directory under
 * os.tmpdir() is used (override with $JIGDOFS_FIXTURES_DIR). With `dir`, that directory is used:
 * it must be absent, empty, or hold a fixture set of the same version.
 */
export function buildFixtures(dir?: string): Promise<FixtureSet> {
  const target = resolve(dir ?? process.env['JIGDOFS_FIXTURES_DIR'] ?? defaultDir());
  let p = memo.get(target);
  if (!p) {
    p = obtain(target, dir === undefined && process.env['JIGDOFS_FIXTURES_DIR'] === undefined);
    memo.set(target, p);
    // A failed build must not poison the memo: the next caller retries.
    p.catch(() => memo.delete(target));
  }
  return p;
}

/**
 * Write a copy of a variant's .jigdo into `outDir` with `Parts=` replaced by `uri`, plus a copy of
 * its template next to it (the .jigdo names the template relative to itself). Returns the path of
 * the new .jigdo. Use it when the test's HTTP server listens on an ephemeral port.
 */
export async function jigdoWithPartsUri(variant: FixtureVariant, uri: string, outDir: string): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const text = await readFile(variant.jigdo, 'utf8');
  const out = join(outDir, basename(variant.jigdo));
  await writeFile(out, setServer(text, PARTS_LABEL, uri));
  await copyFile(variant.template, join(outDir, basename(variant.template)));
  return out;
}

// ------------------------------------------------------------------------------------------------
// cache handling: reuse, lock, stage + rename

/** Key the shared directory on the version and on this file's source, so edits rebuild. */
function defaultDir(): string {
  const self = fileURLToPath(import.meta.url);
  let srcHash = 'nosrc';
  try {
    // Synchronous read is fine: one small file, once per process, before any await.
    srcHash = createHash('sha256').update(readFileSync(self)).digest('hex').slice(0, 10);
  } catch { /* bundled or missing source: fall back to the version alone */ }
  return join(tmpdir(), `jigdofs-fixtures-${FIXTURE_VERSION}-${srcHash}`);
}

async function obtain(target: string, owned: boolean): Promise<FixtureSet> {
  const existing = await loadManifest(target);
  if (existing) return existing;

  // Another process may be building the same directory: wait for it rather than doubling the work.
  const lock = `${target}.lock`;
  const haveLock = await tryLock(lock);
  try {
    if (!haveLock) {
      const built = await waitForOther(target, lock);
      if (built) return built;
    }
    const again = await loadManifest(target);
    if (again) return again;
    await clearInvalid(target, owned);
    return await buildAtomically(target);
  } finally {
    if (haveLock) await rm(lock, { recursive: true, force: true });
  }
}

async function tryLock(lock: string): Promise<boolean> {
  try {
    await mkdir(lock);
    return true;
  } catch (e) {
    if (errCode(e) !== 'EEXIST') throw e;
    // A lock older than any sane build is left over from a killed process.
    const age = Date.now() - (await stat(lock).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
    if (age > 5 * 60_000) {
      await rm(lock, { recursive: true, force: true });
      return tryLock(lock);
    }
    return false;
  }
}

async function waitForOther(target: string, lock: string): Promise<FixtureSet | undefined> {
  const deadline = Date.now() + 5 * 60_000;
  while (Date.now() < deadline) {
    const set = await loadManifest(target);
    if (set) return set;
    if (!(await exists(lock))) return loadManifest(target); // builder gave up or failed
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}

/** Remove a stale/broken default directory; refuse to delete a caller-supplied non-empty one. */
async function clearInvalid(target: string, owned: boolean): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(target);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return;
    throw e;
  }
  if (entries.length === 0) {
    await rmdir(target);
    return;
  }
  if (!owned) throw new Error(`fixtures: ${target} is not empty and holds no valid ${FIXTURE_VERSION} manifest`);
  await rm(target, { recursive: true, force: true });
}

async function buildAtomically(target: string): Promise<FixtureSet> {
  await mkdir(dirname(target), { recursive: true });
  await removeStaleStages(target);
  const stage = await mkdtemp(`${target}.tmp-`);
  try {
    const t0 = Date.now();
    const manifest = await buildInto(stage);
    manifest.buildMs = Date.now() - t0;
    await writeFile(join(stage, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    try {
      await rename(stage, target);
    } catch (e) {
      // Lost a race against a process that did not see our lock (e.g. a stale-lock takeover).
      if (errCode(e) !== 'ENOTEMPTY' && errCode(e) !== 'EEXIST') throw e;
      const theirs = await loadManifest(target);
      if (!theirs) throw e;
      return theirs;
    }
    const set = await loadManifest(target);
    if (!set) throw new Error(`fixtures: manifest unreadable after rename into ${target}`);
    return set;
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

/** Staging directories left by killed builds (an hour is far beyond any real build). */
async function removeStaleStages(target: string): Promise<void> {
  const prefix = `${basename(target)}.tmp-`;
  const names = await readdir(dirname(target)).catch(() => [] as string[]);
  for (const n of names.filter((x) => x.startsWith(prefix))) {
    const p = join(dirname(target), n);
    const st = await stat(p).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > 60 * 60_000) await rm(p, { recursive: true, force: true });
  }
}

/** The stored manifest, with absolute paths, if it is complete and of this version. */
async function loadManifest(dir: string): Promise<FixtureSet | undefined> {
  let raw: string;
  try {
    raw = await readFile(join(dir, 'manifest.json'), 'utf8');
  } catch {
    return undefined;
  }
  let m: FixtureSet;
  try {
    m = JSON.parse(raw) as FixtureSet;
  } catch {
    return undefined;
  }
  if (m.version !== FIXTURE_VERSION) return undefined;
  const set = absolutize(m, dir);
  // Cheap sanity check (sizes only): catches a test that wrote into the shared set.
  for (const v of Object.values(set.variants)) {
    for (const f of [v.jigdo, v.jigdoOriginal, v.template]) if (!(await exists(f))) return undefined;
    const st = await stat(v.image).catch(() => undefined);
    if (!st || st.size !== v.imageSize) return undefined;
  }
  return set;
}

function absolutize(m: FixtureSet, dir: string): FixtureSet {
  const abs = (p: string): string => resolve(dir, p);
  const variants = {} as Record<VariantName, FixtureVariant>;
  for (const name of VARIANT_NAMES) {
    const v = m.variants[name];
    variants[name] = {
      ...v,
      jigdo: abs(v.jigdo), jigdoOriginal: abs(v.jigdoOriginal), template: abs(v.template),
      image: abs(v.image), partsDir: abs(v.partsDir), notes: [...v.notes],
    };
  }
  return {
    ...m,
    dir,
    tree: abs(m.tree),
    partsDir: abs(m.partsDir),
    iso: abs(m.iso),
    files: m.files.map((f) => ({ ...f, absPath: abs(join(m.tree, f.path)) })),
    variants,
  };
}

// ------------------------------------------------------------------------------------------------
// the build itself (everything relative to `stage`, which is also the cwd of every tool)

interface Tools {
  xorriso: string;
  jigdoFile: string;
  mkfsExt4: string;
  debugfs: string;
}

/** Files of the tree: relative path → content generator. Sizes deliberately not sector multiples. */
interface TreeEntry {
  path: string;
  content: () => Buffer;
}

const KB = 1000;

function treeSpec(): TreeEntry[] {
  const rnd = (seed: string, size: number) => () => prngBytes(seed, size);
  return [
    // parts of various sizes (random, so jigdo-file's rolling match is unambiguous)
    { path: 'parts/pool/a-3k.bin', content: rnd('a', 3 * KB) },
    { path: 'parts/pool/b-40k.bin', content: rnd('b', 40 * KB) },
    { path: 'parts/pool/c-200k.bin', content: rnd('c', 200 * KB) },
    { path: 'parts/pool/d-1500k.bin', content: rnd('d', 1500 * KB) },
    { path: 'parts/pool/e-3m.bin', content: rnd('e', 3000 * KB) },
    // the same bytes under a second name: one part at two image offsets
    { path: 'parts/extra/c-200k-copy.bin', content: rnd('c', 200 * KB) },
    // exactly jigdo-file's default --min-length: the smallest file jigdo-file matches
    { path: 'parts/tiny/exact-1024.bin', content: rnd('exact', 1024) },
    // below 1024 bytes: parts only for libjte with -jigdo-min-file-size 0
    { path: 'parts/tiny/t-0001.bin', content: rnd('t1', 1) },
    { path: 'parts/tiny/t-0100.txt', content: () => textBytes('tiny', 100) },
    { path: 'parts/tiny/t-0500.bin', content: rnd('t500', 500) },
    { path: 'parts/tiny/t-1023.bin', content: rnd('t1023', 1023) },
    { path: 'parts/tiny/empty', content: () => Buffer.alloc(0) },
    // never parts: compressible and incompressible raw data for the template
    { path: 'raw/zeros-and-text.bin', content: zerosAndText },
    { path: 'raw/firmware.bin', content: rnd('firmware', 65 * 1024 + 123) },
    { path: 'README.txt', content: () => textBytes('readme', 1800) },
  ];
}

/** Deterministic incompressible bytes: the AES-128-CTR keystream keyed by sha256(seed). */
function prngBytes(seed: string, size: number): Buffer {
  const key = createHash('sha256').update(`jigdofs-fixture:${seed}`).digest();
  const c = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  return Buffer.concat([c.update(Buffer.alloc(size)), c.final()]);
}

function textBytes(tag: string, size: number): Buffer {
  const lines: string[] = [];
  for (let i = 0, n = 0; n < size; i++) {
    const l = `${tag} line ${i}: jigdofs fixture text, the quick brown fox jumps over the lazy dog.\n`;
    lines.push(l);
    n += l.length;
  }
  return Buffer.from(lines.join('')).subarray(0, size);
}

/** 2 MiB of zeros between two text blocks: makes the raw template data large but cheap. */
function zerosAndText(): Buffer {
  return Buffer.concat([textBytes('head', 4000), Buffer.alloc(2 * 1024 * 1024), textBytes('tail', 3000)]);
}

async function buildInto(stage: string): Promise<FixtureSet> {
  const tools = await findTools();
  const tree = join(stage, 'tree');
  const files = await writeTree(tree);
  await run(tools.xorriso, ['-as', 'mkisofs', '-r', '-o', 'image.iso', 'tree/'], stage);

  const partsDir = join(tree, 'parts');
  const builders: Record<VariantName, () => Promise<FixtureVariant>> = {
    'jf-md5-gzip': () => jfVariant(tools, stage, 'jf-md5-gzip', 'md5', 'gzip'),
    'jf-sha256-gzip': () => jfVariant(tools, stage, 'jf-sha256-gzip', 'sha256', 'gzip'),
    'jf-md5-bzip2': () => jfVariant(tools, stage, 'jf-md5-bzip2', 'md5', 'bzip2'),
    'jf-sha256-bzip2': () => jfVariant(tools, stage, 'jf-sha256-bzip2', 'sha256', 'bzip2'),
    'jte-md5-gzip': () => jteVariant(tools, stage, files, 'jte-md5-gzip', 'md5', 'gzip', 0),
    'jte-sha256-bzip2': () => jteVariant(tools, stage, files, 'jte-sha256-bzip2', 'sha256', 'bzip2', undefined),
    ext4: () => ext4Variant(tools, stage, files),
    nomatch: () => nomatchVariant(tools, stage),
  };
  const built = await mapLimit(VARIANT_NAMES, availableParallelism(), (n) => builders[n]());
  const variants = {} as Record<VariantName, FixtureVariant>;
  for (const v of built) variants[v.name] = v;

  await mapLimit(built, availableParallelism(), (v) => verifyWithMakeImage(tools, stage, v));

  // The manifest holds paths relative to the fixture directory.
  const rel = (p: string): string => relative(stage, p) || '.';
  for (const v of built) {
    Object.assign(v, {
      jigdo: rel(v.jigdo), jigdoOriginal: rel(v.jigdoOriginal), template: rel(v.template),
      image: rel(v.image), partsDir: rel(v.partsDir),
    });
  }
  return {
    version: FIXTURE_VERSION,
    dir: '.',
    tree: 'tree',
    partsDir: rel(partsDir),
    partsLabel: PARTS_LABEL,
    partsUri: PARTS_URI,
    iso: 'image.iso',
    files: files.map((f) => ({ ...f, absPath: '' })),
    variants,
    buildMs: 0,
  };
}

async function writeTree(tree: string): Promise<FixtureFile[]> {
  const files: FixtureFile[] = [];
  const dirs = new Set<string>([tree]);
  for (const e of treeSpec()) {
    const abs = join(tree, e.path);
    for (let d = dirname(abs); d.startsWith(tree) && !dirs.has(d); d = dirname(d)) dirs.add(d);
    await mkdir(dirname(abs), { recursive: true });
    const data = e.content();
    await writeFile(abs, data);
    files.push({
      path: e.path,
      absPath: abs,
      size: data.length,
      md5: createHash('md5').update(data).digest('hex'),
      sha256: createHash('sha256').update(data).digest('hex'),
      isPart: e.path.startsWith('parts/'),
    });
  }
  // Fixed mtimes (files first, then directories deepest-first) so ISO and ext4 bytes are stable.
  for (const f of files) await utimes(f.absPath, SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH);
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) await utimes(d, SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH);
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

// ------------------------------------------------------------------------------------------------
// variants

function baseVariant(
  stage: string, name: VariantName, producer: FixtureVariant['producer'],
  checksum: FixtureVariant['checksum'], compression: FixtureVariant['compression'], image: string,
): FixtureVariant {
  return {
    name, producer, checksum, compression,
    jigdo: join(stage, `${name}.jigdo`),
    jigdoOriginal: join(stage, `${name}.orig.jigdo`),
    template: join(stage, `${name}.template`),
    image,
    imageMd5: '', imageSha256: '', imageSize: 0,
    partsDir: join(stage, 'tree', 'parts'),
    makeImageVerified: false,
    notes: [],
  };
}

/**
 * jigdo-file make-template. `parts//` marks where the label path ends, so a file
 * tree/parts/pool/a.bin becomes `Parts:pool/a.bin`; --uri replaces the default `file:` URI.
 * --no-cache keeps jigdo-file from writing ~/.jigdo-cache.db.
 */
async function makeTemplate(
  tools: Tools, stage: string, image: string, name: string, extra: string[], withParts: boolean,
): Promise<void> {
  await run(tools.jigdoFile, [
    'make-template', '-r', 'quiet', '--force', '--no-cache',
    `--image=${image}`, `--jigdo=${name}.orig.jigdo`, `--template=${name}.template`,
    '--label', `${PARTS_LABEL}=tree/parts`, '--uri', `${PARTS_LABEL}=${PARTS_URI}`,
    ...extra,
    ...(withParts ? ['tree/parts//'] : []),
  ], stage);
}

async function jfVariant(
  tools: Tools, stage: string, name: VariantName, checksum: 'md5' | 'sha256', compression: 'gzip' | 'bzip2',
): Promise<FixtureVariant> {
  const v = baseVariant(stage, name, 'jigdo-file', checksum, compression, join(stage, 'image.iso'));
  const extra = [...(checksum === 'sha256' ? ['-C', 'sha256'] : []), ...(compression === 'bzip2' ? ['--bzip2'] : [])];
  await makeTemplate(tools, stage, 'image.iso', name, extra, true);
  await finishJigdo(v);
  v.notes.push('files < 1024 bytes (--min-length) are never parts; the copy appears once in [Parts]');
  return v;
}

async function nomatchVariant(tools: Tools, stage: string): Promise<FixtureVariant> {
  const v = baseVariant(stage, 'nomatch', 'jigdo-file', 'md5', 'gzip', join(stage, 'image.iso'));
  await makeTemplate(tools, stage, 'image.iso', 'nomatch', [], false);
  await finishJigdo(v);
  v.notes.push('no file list: the template is one raw region; jigdo-file wrote an empty [Servers] (patched)');
  return v;
}

async function ext4Variant(tools: Tools, stage: string, files: FixtureFile[]): Promise<FixtureVariant> {
  const v = baseVariant(stage, 'ext4', 'jigdo-file', 'md5', 'gzip', join(stage, 'ext4.img'));
  // Pre-create the image file so mke2fs does not print "Creating regular file".
  await writeFile(v.image, '');
  // Fixed UUID, hash seed and time (E2FSPROGS_FAKE_TIME) make the image reproducible.
  const uuid = '6a1d0f5e-0000-4000-8000-00000000f1f0';
  await run(tools.mkfsExt4, [
    '-q', '-F', '-b', '4096', '-m', '0', '-L', 'jigdofs', '-U', uuid,
    '-E', `root_owner=0:0,hash_seed=${uuid}`, '-d', 'tree', 'ext4.img', '16M',
  ], stage);
  await pinExt4Times(tools, stage, files);
  await makeTemplate(tools, stage, 'ext4.img', 'ext4', [], true);
  await finishJigdo(v);
  v.notes.push('ext4 (4 KiB blocks, 16 MiB): mount with `mount -o loop,ro` from a FUSE-served file');
  return v;
}

/**
 * mke2fs -d copies each source inode's atime and ctime. ctime cannot be set from user space and
 * atime moves whenever a tool reads the tree, so both are rewritten in the image with debugfs
 * (which also fixes the inode checksums); after this the image is bit-for-bit reproducible.
 */
async function pinExt4Times(tools: Tools, stage: string, files: FixtureFile[]): Promise<void> {
  const paths = new Set<string>(['/']);
  for (const f of files) {
    const parts = f.path.split('/');
    for (let i = 1; i <= parts.length; i++) paths.add('/' + parts.slice(0, i).join('/'));
  }
  const cmds = [...paths].sort().flatMap((p) => ['atime', 'ctime'].map((fld) => `sif ${p} ${fld} @${SOURCE_DATE_EPOCH}\n`));
  await writeFile(join(stage, 'ext4-times.debugfs'), cmds.join(''));
  const { stderr } = await runFull(tools.debugfs, ['-w', '-f', 'ext4-times.debugfs', 'ext4.img'], stage);
  // debugfs exits 0 even when a command fails; anything besides its banner is an error.
  const errors = stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('debugfs '));
  if (errors.length > 0) throw new Error(`fixtures: debugfs failed on ext4.img:\n${errors.slice(0, 10).join('\n')}`);
}

/**
 * libjte variant: xorriso writes image, .jigdo and .template in one go. Parts are chosen by the
 * checksum list (-checksum-list), not by content. Its addresses are relative (`parts/...`) so no
 * staging path leaks into the output; -jigdo-map turns the `parts/` prefix into `Parts:`.
 */
async function jteVariant(
  tools: Tools, stage: string, files: FixtureFile[], name: VariantName,
  checksum: 'md5' | 'sha256', compression: 'gzip' | 'bzip2', minFileSize: number | undefined,
): Promise<FixtureVariant> {
  const v = baseVariant(stage, name, 'libjte', checksum, compression, join(stage, `${name}.iso`));
  const listName = `${name}.${checksum}-list`;
  await writeFile(join(stage, listName), checksumList(files, checksum));
  await run(tools.xorriso, [
    '-as', 'mkisofs', '-r', '-o', `${name}.iso`,
    '-jigdo-jigdo', `${name}.orig.jigdo`, '-jigdo-template', `${name}.template`,
    '-jigdo-checksum-algorithm', checksum, '-jigdo-template-compress', compression,
    ...(minFileSize !== undefined ? ['-jigdo-min-file-size', String(minFileSize)] : []),
    '-checksum-list', listName, '-jigdo-map', `${PARTS_LABEL}=parts/`,
    'tree/',
  ], stage);
  await finishJigdo(v);
  v.notes.push(
    'libjte .jigdo: [Parts] before an empty [Servers], one line per path (the copy is listed twice), '
      + 'Filename=stdio:<name>.iso, Template=http://localhost/<name>.template, trailing space after '
      + 'Template-*Sum; the patched .jigdo sets Filename/Template to local names and adds Parts=',
  );
  if (minFileSize === 0) {
    v.notes.push('-jigdo-min-file-size 0: zero-length and < 1024-byte parts (rsync zero-padded, spec §3.3)');
  }
  return v;
}

/** xorriso's format: hex checksum, 2 blanks, size in 12 columns, 2 blanks, address. */
function checksumList(files: FixtureFile[], checksum: 'md5' | 'sha256'): string {
  return files
    .filter((f) => f.isPart)
    .map((f) => `${f[checksum]}  ${String(f.size).padStart(12)}  ${f.path}\n`)
    .join('');
}

/**
 * Derive `<name>.jigdo` from `<name>.orig.jigdo`: [Servers] gets `Parts=PARTS_URI` (libjte and
 * jigdo-file without matches leave it empty), and libjte's `stdio:`/`http://localhost/` names are
 * made local, as debian-cd's jigdo_cleanup does for published files.
 */
async function finishJigdo(v: FixtureVariant): Promise<void> {
  let text = await readFile(v.jigdoOriginal, 'utf8');
  text = setServer(text, PARTS_LABEL, PARTS_URI);
  if (v.producer === 'libjte') {
    text = text
      .replace(/^Filename=stdio:(.*)$/m, (_m, f: string) => `Filename=${f}`)
      .replace(/^Template=http:\/\/localhost\/(.*)$/m, (_m, t: string) => `Template=${t}`);
  }
  await writeFile(v.jigdo, text);
  const h = await hashFile(v.image);
  Object.assign(v, { imageMd5: h.md5, imageSha256: h.sha256, imageSize: h.size });
}

/** Set `label=uri` in the first [Servers] section (added if missing), replacing earlier values. */
function setServer(text: string, label: string, uri: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^\s*\[Servers\]\s*$/.test(l));
  const entry = `${label}=${uri}`;
  if (start < 0) return `${text.replace(/\n*$/, '\n')}\n[Servers]\n${entry}\n`;
  let end = lines.findIndex((l, i) => i > start && /^\s*\[/.test(l));
  if (end < 0) end = lines.length;
  const body = lines.slice(start + 1, end).filter((l) => !new RegExp(`^\\s*${label}\\s*=`).test(l));
  // Keep the section's trailing blank lines after our entry so the layout stays tidy.
  const content = body.filter((l) => l.trim() !== '');
  const blanks = body.length - content.length;
  const section = [entry, ...content, ...Array<string>(blanks).fill('')];
  return [...lines.slice(0, start + 1), ...section, ...lines.slice(end)].join('\n');
}

/**
 * Rebuild the image with jigdo-file from template + partsDir and compare its MD5. make-image picks
 * files by checksum, so the `//` label marker is irrelevant here and partsDir is passed plainly.
 */
async function verifyWithMakeImage(tools: Tools, stage: string, v: FixtureVariant): Promise<void> {
  if (v.name === 'jte-md5-gzip') {
    // Spec §6.3/§3.3: jigdo-file never finds zero-length parts and computes the rsync of a tiny
    // part without libjte's zero padding, so it ends with exit 2 on this template by design.
    v.notes.push('not verified with jigdo-file make-image: it cannot finish zero-length/tiny parts (exit 2)');
    return;
  }
  const out = join(stage, `verify-${v.name}.img`);
  try {
    await run(tools.jigdoFile, [
      'make-image', '-r', 'quiet', `--image=${out}`, `--jigdo=${v.jigdoOriginal}`, `--template=${v.template}`,
      v.partsDir,
    ], stage);
    const h = await hashFile(out);
    if (h.md5 !== v.imageMd5 || h.size !== v.imageSize) {
      throw new Error(`fixtures: make-image of ${v.name} gave md5 ${h.md5} (${h.size} B), want ${v.imageMd5} (${v.imageSize} B)`);
    }
    v.makeImageVerified = true;
  } finally {
    await rm(out, { force: true });
    await rm(`${out}.tmp`, { force: true });
  }
}

// ------------------------------------------------------------------------------------------------
// small utilities

async function findTools(): Promise<Tools> {
  const [xorriso, jigdoFile, mkfsExt4, debugfs] = await Promise.all([
    findTool('xorriso', 'xorriso'), findTool('jigdo-file', 'jigdo-file'),
    findTool('mkfs.ext4', 'e2fsprogs'), findTool('debugfs', 'e2fsprogs'),
  ]);
  // Jigdo options only exist when xorriso was built with libjte.
  const { stdout, stderr } = await execFileP(xorriso, ['-version'], { maxBuffer: 1 << 20 });
  if (!/^libjte/m.test(stdout + stderr)) throw new Error('fixtures: xorriso lacks libjte support (no -jigdo-* options)');
  return { xorriso, jigdoFile, mkfsExt4, debugfs };
}

/** Look the tool up in PATH plus the sbin directories (mkfs.ext4 lives there; not in a user PATH). */
async function findTool(name: string, pkg: string): Promise<string> {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs.filter(Boolean)) {
    const p = join(d, name);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch { /* try the next directory */ }
  }
  throw new Error(`fixtures: required tool '${name}' not found; install it with: apt-get install ${pkg} (or run scripts/setup.sh)`);
}

/** Run a tool without a shell, in `cwd`, with the reproducibility variables set; returns stdout. */
async function run(cmd: string, args: string[], cwd: string): Promise<string> {
  return (await runFull(cmd, args, cwd)).stdout;
}

async function runFull(cmd: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  const env = {
    ...process.env,
    SOURCE_DATE_EPOCH: String(SOURCE_DATE_EPOCH),
    E2FSPROGS_FAKE_TIME: String(SOURCE_DATE_EPOCH),
    LC_ALL: 'C',
  };
  try {
    return await execFileP(cmd, args, { cwd, env, maxBuffer: 64 << 20 });
  } catch (e) {
    const x = e as { code?: unknown; stderr?: string; stdout?: string };
    const out = `${x.stderr ?? ''}${x.stdout ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new Error(`fixtures: ${basename(cmd)} ${args.join(' ')} failed (exit ${String(x.code)}) in ${cwd}\n${out}`);
  }
}

async function hashFile(path: string): Promise<{ md5: string; sha256: string; size: number }> {
  const md5 = createHash('md5');
  const sha = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const b = chunk as Buffer;
    md5.update(b);
    sha.update(b);
    size += b.length;
  }
  return { md5: md5.digest('hex'), sha256: sha.digest('hex'), size };
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

function errCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}
