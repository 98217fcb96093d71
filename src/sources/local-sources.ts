import type { Stats } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { decodeBytes, fsPath, shown } from '../format/byte-string.js';
import { checksumKey, type ChecksumKind } from '../format/checksum.js';
import { errorMessage } from '../format/errors.js';
import type { JigdoFile } from '../format/jigdo.js';
import { LabelMap, partCandidates, splitLabel } from '../format/resolve.js';
import type { Desc } from '../format/template.js';
import { writtenParts } from './jigdo-lite-tmp.js';
import type { ImageLayout, PartNeed } from '../image/layout.js';
import { DiscImages, NOT_SCANNED, type RsyncScan } from './disc-images.js';
import { identityOfStats } from './file-identity.js';
import type { HashIndex } from './hash-index.js';
import { indexField, verifyLocalCopy, type LocalCheck, type LocalCopy, type VerifiedCopy } from './verified-copy.js';
import { firstBlockMatches } from './first-block.js';
import type { WorkerPool } from '../util/worker-pool.js';

export interface LocalTree {
  label: string;
  dir: string;
}

export interface LocalOptions {
  /** `--local LABEL=DIR`: `Label:path` → `DIR/path`. */
  trees: LocalTree[];
  /** `--scan PATH`: folders walked recursively, files indexed by size then checksum; jigdo-lite `.tmp` files. */
  scan: string[];
  /** `--no-scan-images` (false): --scan files that are disc images are not looked into. */
  scanImages?: boolean;
  /** `--scan-deep FILE`: files searched at every 512-byte boundary for parts (disc-images.ts). */
  scanDeep?: string[];
  log?: (line: string) => void;
}

/** Joins `rest` under `dir`, refusing anything that would escape it (`..`, absolute paths). */
export function pathInside(dir: string, rest: string): string | undefined {
  const root = path.resolve(dir);
  const full = path.resolve(root, rest.replace(/^\/+/, ''));
  return full === root || full.startsWith(root + path.sep) ? full : undefined;
}

/** Unreadable folders the walk names; past these, only their count. */
const MAX_UNREADABLE_SAID = 5;

/** A place that may hold a part: a whole file, or a region of a .tmp; `named` when the .jigdo names that place. */
interface Candidate {
  path: string;
  offset: number;
  named?: boolean;
}

/** A candidate's place, as `lost` keys it: the same file and offset is checked once per look-up. */
const placeId = (c: { path: string; offset: number }): string => `${c.path}@${c.offset}`;

/**
 * Local copies of parts, looked up by checksum: `--local` trees, `file:` candidates of the .jigdo, files
 * found by `--scan` whose size equals a part's size, and written regions of jigdo-lite `.tmp` files.
 * Nothing is trusted before its checksum matched (verified-copy.ts; hashes are remembered in the HashIndex).
 *
 * Fields: `bySize` and `tmpRegions` are filled once by the scan (`scanned`) and only read after it; `lost`
 * grows as rechecks find copies that changed. Looked up in two steps, the session's providers in between (the disk
 * cache: engine/session.ts): the places the .jigdo names (findNamed), then, once the scan is over, the places it
 * found (findScanned); each candidate checked in turn (one hash at a time per part: the first match ends the search).
 */
export class LocalSources {
  private bySize = new Map<number, string[]>();
  /** Folders the --scan walk could not list (unreadableFolder). */
  private unreadable = 0;
  private tmpRegions = new Map<string, Array<{ path: string; offset: number }>>();
  private readonly labels: LabelMap;
  private scanned: Promise<void> | undefined;
  /**
   * `path@offset` → the part a recheck found it does not hold (to name it when the part is missing): `changed` when it
   * had been hashed as that part before, not when it was taken unhashed (make-image's verify once) and never held it.
   */
  private readonly lost = new Map<string, { key: string; changed: boolean }>();
  /** For tests and a later `status`: hashes computed (not known from the index), disc images found. */
  readonly stats = { hashed: 0, images: 0 };
  /** The jigdo-lite `.tmp` files whose DESC matched (their written parts are candidates). */
  readonly tmpFilesUsed = new Set<string>();
  /** Old disc images found by --scan (and --scan-deep files): parts inside them. */
  readonly images: DiscImages;
  /** See deferChecks: named copies taken unhashed, and those so taken (to record once the image matched). */
  private deferring = false;
  private readonly deferred: Array<{ key: string; copy: LocalCopy }> = [];
  /** Each part's RsyncSum64 of its first block, from the template's DESC (made on first use). */
  private firstBlocks: Map<string, Buffer> | undefined;

  constructor(
    private readonly jigdo: JigdoFile,
    private readonly layout: ImageLayout,
    private readonly templateDesc: Desc,
    private readonly opts: LocalOptions,
    private readonly index: HashIndex,
    private readonly pool: WorkerPool,
  ) {
    this.labels = new LabelMap(jigdo.servers);
    this.images = new DiscImages(new Set([...layout.parts.values()].map((p) => p.length)), opts.log ?? (() => undefined));
  }

  private get kind(): ChecksumKind {
    return this.layout.checksumKind;
  }

  /** Walks the --scan paths once (stat only: hashing happens per part, on demand). */
  scan(): Promise<void> {
    return (this.scanned ??= this.walkAll());
  }

  /**
   * A folder the walk could not list (EACCES): said, the first few by name, so that the parts under it are not just "not
   * in the cache"; the count of the others once the walk is over (a --scan of a home folder may hold many).
   */
  private unreadableFolder(folder: string, err: unknown): void {
    if (++this.unreadable <= MAX_UNREADABLE_SAID) this.opts.log?.(`scan: cannot read the folder ${shown(folder)}: ${errorMessage(err)}`);
  }

  private async walkAll(): Promise<void> {
    const sizes = new Set([...this.layout.parts.values()].map((p) => p.length));
    const seen = new Set<string>();
    for (const root of this.opts.scan) await this.walk(path.resolve(root), sizes, seen, 0);
    if (this.unreadable > MAX_UNREADABLE_SAID) this.opts.log?.(`scan: ${this.unreadable - MAX_UNREADABLE_SAID} more folder(s) could not be read`);
    const scan: RsyncScan = (...a) => this.pool.rsyncScan(...a);
    for (const file of this.opts.scanDeep ?? []) await this.images.deepScan(path.resolve(file), this.templateDesc, scan);
  }

  private async walk(file: string, sizes: Set<number>, seen: Set<string>, depth: number): Promise<void> {
    let st;
    try {
      st = await stat(fsPath(file)); // follows symlinks, like jigdo-file's scan
    } catch (err) {
      if (depth === 0) this.opts.log?.(`scan: cannot read ${shown(file)}: ${errorMessage(err)}`);
      return;
    }
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id) || depth > 64) return; // symlink loops
    seen.add(id);
    if (st.isDirectory()) {
      // Names by their exact bytes: a Latin-1 or CP437 name read as a string would come back as U+FFFD and not open.
      const raw = await readdir(fsPath(file), { encoding: 'buffer' }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') this.unreadableFolder(file, err); // (gone meanwhile: nothing to say)
        return [] as Buffer[];
      });
      for (const name of raw.map((b) => decodeBytes(b)).sort()) await this.walk(path.join(file, name), sizes, seen, depth + 1);
      return;
    }
    if (st.isBlockDevice() && depth === 0) {
      await this.scanDevice(file, st);
      return;
    }
    if (!st.isFile()) {
      // Named on the command line, a character device or a pipe would otherwise be passed over without a word; a
      // device inside a folder (`--scan /dev`) is passed over: only a disc named by its device is read.
      if (depth === 0) this.opts.log?.(`scan: ${shown(file)}: ${NOT_SCANNED}`);
      return;
    }
    if (sizes.has(st.size)) {
      const list = this.bySize.get(st.size) ?? [];
      list.push(file);
      this.bySize.set(st.size, list);
    }
    if (file.endsWith('.tmp') && st.size > this.layout.size) await this.addTmpFile(file, depth === 0);
    else if (this.opts.scanImages !== false && (await this.images.consider(file, st.size))) this.stats.images++;
  }

  /**
   * `--scan /dev/sr0`: the disc in a drive (any block device holding a disc image) is looked into as an image file
   * is, read where it lies; its size comes from sysfs, and the medium in it is part of its identity (hash-index.ts).
   */
  private async scanDevice(file: string, st: Stats): Promise<void> {
    const log = (line: string): void => this.opts.log?.(`scan: ${shown(file)}: ${line}`);
    if (this.opts.scanImages === false) return log('a device is only read as a disc image, and --no-scan-images is given: not scanned');
    const id = await identityOfStats(st).catch((err: unknown) => log(`${errorMessage(err)}: not scanned`));
    if (id && (await this.images.consider(file, id.size, id))) this.stats.images++;
  }

  /**
   * A jigdo-lite `IMG.tmp` whose DESC matches the template gives its written parts (spec §6.2, §6.5). One named
   * itself (not found in a folder) that does not is said to be of another image, as jigdo-file refuses to reuse it.
   */
  private async addTmpFile(file: string, named: boolean): Promise<void> {
    const { opened, parts } = await writtenParts(file, this.layout.size, this.templateDesc);
    if (!parts) {
      if (opened && named) this.opts.log?.(`scan: ${shown(file)}: not an unfinished image of this template (jigdo-lite's .tmp of another image or template): not used`);
      return;
    }
    this.tmpFilesUsed.add(file);
    for (const { key, offset } of parts) this.tmpRegions.set(key, [...(this.tmpRegions.get(key) ?? []), { path: file, offset }]);
  }

  /** The places the .jigdo names for the part (--local trees, `file:` URIs): known without the scan. */
  private namedCandidates(need: PartNeed): Candidate[] {
    const out: Candidate[] = [];
    for (const value of this.jigdo.parts.get(need.key) ?? []) {
      const split = splitLabel(value.uri);
      if (!split) continue;
      for (const tree of this.opts.trees) {
        if (tree.label !== split.label) continue;
        const full = pathInside(tree.dir, split.rest);
        if (full) out.push({ path: full, offset: 0, named: true });
      }
    }
    for (const c of partCandidates(this.jigdo, this.labels, need.key)) if (c.kind === 'file') out.push({ path: c.path, offset: 0, named: true });
    return out;
  }

  /** The places the scan found that may hold the part: files of its size, written regions of .tmp files. */
  private scannedCandidates(need: PartNeed): Candidate[] {
    return [...(this.bySize.get(need.length) ?? []).map((file) => ({ path: file, offset: 0 })), ...(this.tmpRegions.get(need.key) ?? [])];
  }

  /** The local check of one candidate place (verified-copy.ts), counting what was hashed; a failed hash is logged. */
  private async check(at: Parameters<typeof verifyLocalCopy>[3], key: string, defer = false): Promise<LocalCheck | undefined> {
    let found;
    try {
      found = await verifyLocalCopy(this.index, (...a) => this.pool.hashFile(...a), this.kind, at, key, defer);
    } catch (err) {
      this.opts.log?.(`cannot hash ${shown(at.file)}: ${errorMessage(err)}`);
      return undefined;
    }
    if (found?.hashed) this.stats.hashed++;
    if (found?.copy?.deferred) this.deferred.push({ key, copy: found.copy });
    return found;
  }

  /**
   * A verified local copy of the part, or undefined: the places the .jigdo names (findNamed), then those the scan found
   * (findScanned). Throws, after both, when either found a file that should hold the part and does not.
   */
  async find(key: string): Promise<VerifiedCopy | undefined> {
    const problems: string[] = [];
    for (const step of [(k: string) => this.findNamed(k), (k: string) => this.findScanned(k)]) {
      try {
        const copy = await step(key);
        if (copy) return copy;
      } catch (err) {
        problems.push(errorMessage(err));
      }
    }
    if (problems.length > 0) throw new Error(problems.join('; '));
    return undefined;
  }

  /**
   * A verified copy at a place the .jigdo names for the part (--local trees, `file:` URIs), or undefined. Never waits
   * for the --scan walk: a mount whose --local tree had every part served nothing until a large --scan (a home folder,
   * a mirror) was walked, and nothing at all while a --scan folder hung.
   */
  async findNamed(key: string): Promise<VerifiedCopy | undefined> {
    const need = this.layout.parts.get(key);
    return need && this.firstHolding(key, need, this.namedCandidates(need));
  }

  /** A verified copy at a place the --scan walk found (waiting for it), other than those findNamed looks at. */
  async findScanned(key: string): Promise<VerifiedCopy | undefined> {
    const need = this.layout.parts.get(key);
    if (!need) return undefined;
    await this.scan();
    const named = new Set(this.namedCandidates(need).map(placeId));
    return this.firstHolding(key, need, this.scannedCandidates(need).filter((c) => !named.has(placeId(c))));
  }

  /**
   * The first candidate that holds the part, each checked in turn (one hash at a time per part). A file that held the
   * part when it was hashed before and no longer does, or one at the place the .jigdo names for it (a --local tree)
   * that does not hold it, throws once none holds it, so that "missing" names the file: the reason said only "not in
   * the cache" of a --local file with other bytes, and "changed since it was hashed" of one never hashed as the part.
   */
  private async firstHolding(key: string, need: PartNeed, candidates: Candidate[]): Promise<VerifiedCopy | undefined> {
    const [changed, wrong, unusable]: [string[], string[], string[]] = [[], [], []];
    for (const c of new Map(candidates.map((c) => [placeId(c), c])).values()) {
      const whole = !this.isTmp(c.path, key);
      const found = await this.check({ file: c.path, offset: c.offset, length: need.length, whole }, key, this.deferring && c.named === true && whole);
      if (found?.copy) return found.copy;
      const lost = this.lost.get(placeId(c));
      // A region a jigdo-lite .tmp says it wrote the part into claims it as surely as a place the .jigdo names.
      const claimed = c.named === true || !whole;
      if (found?.problem !== undefined && claimed) unusable.push(`${shown(c.path)} ${found.problem}`); // (EACCES, a FIFO: "not in the cache" said nothing)
      else if (found?.was === key || (lost?.key === key && lost.changed)) changed.push(c.path);
      else if (lost?.key === key || (claimed && found !== undefined)) wrong.push(c.path);
    }
    const problems = [
      ...(changed.length > 0 ? [`${changed.map(shown).join(', ')} changed since it was hashed: no longer this part`] : []),
      ...(wrong.length > 0 ? [`${wrong.map(shown).join(', ')} does not hold this part (other bytes)`] : []),
      ...unusable,
    ];
    if (problems.length > 0) throw new Error(problems.join('; '));
    return undefined;
  }

  /**
   * Hashes a copy again, bypassing the index (a whole-image checksum failed, so some recorded checksum
   * lied: an edit that kept every identity field, e.g. on a file system with coarse timestamps). A copy
   * that no longer matches ('wrong'), or can no longer be read ('unreadable': gone, e.g. a cache file evicted
   * or adopted by another process), is marked stale, its index entry dropped, and named in the log.
   */
  async recheck(key: string, copy: LocalCopy, length: number): Promise<'right' | 'wrong' | 'unreadable'> {
    let sum: string | undefined;
    let problem = '';
    try {
      sum = checksumKey(await this.pool.hashFile(copy.path, this.kind, copy.offset, length, copy.ranges));
    } catch (err) {
      problem = errorMessage(err);
    }
    const [offset, field] = this.fieldOf(copy, length);
    if (sum === key) {
      // (A cache file is not indexed: its name says its checksum once the image matched, see confirmDeferred.)
      if (copy.deferred && copy.userFile) this.index.set(copy.path, copy, this.kind, key, offset, field);
      copy.deferred = false;
      return 'right';
    }
    copy.stale = true;
    this.lost.set(placeId(copy), { key, changed: copy.deferred !== true });
    this.images.noteLost(copy.path, key); // (a no-op for a copy outside the old images)
    // A region of an old disc image: only its checksum goes (the image's other files are as they were).
    this.index.forget(copy.path, offset === undefined ? undefined : { kind: this.kind, offset, length: field! });
    const why = sum === undefined ? `cannot be read (${problem}): no longer holds` : copy.deferred ? 'does not hold' : 'changed since it was hashed: no longer holds';
    this.opts.log?.(`${shown(copy.path)}: ${why} part ${key} (${length} bytes): not used`);
    return sum === undefined ? 'unreadable' : 'wrong';
  }

  /**
   * A verified copy of the part inside an old disc image (a file of its listing at its extents, or a place
   * the deep scan found), or undefined. Checked like any local file: by checksum, remembered in the hash
   * index under the image's identity, and the image's identity is checked again before every read.
   */
  async findInImages(key: string): Promise<VerifiedCopy | undefined> {
    const need = this.layout.parts.get(key);
    if (!need || need.length === 0) return undefined;
    await this.scan();
    const named = this.namedPaths(key);
    for (const place of await this.images.candidates(need)) {
      const at = { file: place.image, offset: place.ranges[0]!.offset, length: need.length, whole: false, ranges: place.ranges };
      // Other first bytes than the template's RsyncSum64 says: another file (e.g. a rebuilt package under its old
      // name), not worth hashing. Verify once (see deferChecks): the file at the very path the .jigdo names, with
      // the right first block, is taken unhashed.
      const first = await firstBlockMatches(at, this.firstBlockSum(key), this.templateDesc.blockLength);
      if (first === 'differs') continue;
      const found = await this.check(at, key, this.deferring && first === 'same' && place.path !== undefined && named.has(place.path));
      if (found?.copy) {
        this.images.noteFound(place.image, key, need.length);
        return found.copy;
      }
    }
    return undefined;
  }

  /**
   * For a job that checks its whole output (make-image: the image checksum): a part's copy at the place the
   * .jigdo names for it (`--local` tree, `file:` URI) with the part's size is taken without hashing it, each
   * byte then being hashed once, in the image. Off again (`false`) before the parts are hashed again after a
   * wrong image, so that every copy looked for then is hashed first. Never on for a mount or `serve`: a part
   * they serve is checked before its first byte goes out.
   */
  deferChecks(on: boolean): void {
    this.deferring = on;
  }

  /**
   * The whole output matched: each copy taken unhashed held its part (the image's bytes are the parts' bytes,
   * read while the file kept the identity it had when taken). Recorded in the hash index, so that a later
   * mount or run knows them without hashing.
   */
  confirmDeferred(): void {
    for (const { key, copy } of this.deferred.splice(0)) {
      if (copy.stale || !copy.deferred || copy.otherCopyRead) continue;
      this.index.set(copy.path, copy, this.kind, key, ...this.fieldOf(copy, this.layout.parts.get(key)?.length ?? 0));
      copy.deferred = false;
    }
  }

  /** Where the hash index keeps a copy's checksum: whole files under none, parts inside disc images by their ranges. */
  private fieldOf(copy: LocalCopy, length: number): ReturnType<typeof indexField> {
    return indexField(copy.ranges ? { offset: copy.offset, length, ranges: copy.ranges } : undefined);
  }

  /** The paths the .jigdo names for a part (`Label:path` → `path`, no leading slash), as a disc lists its files. */
  private namedPaths(key: string): Set<string> {
    const out = new Set<string>();
    for (const value of this.jigdo.parts.get(key) ?? []) {
      const rest = splitLabel(value.uri)?.rest.replace(/^\/+/, '');
      if (rest) out.add(rest);
    }
    return out;
  }

  /** The template's RsyncSum64 of a part's first block (DESC), or undefined when it gives none. */
  private firstBlockSum(key: string): Buffer | undefined {
    if (!this.firstBlocks) {
      this.firstBlocks = new Map();
      for (const e of this.templateDesc.entries) if (e.kind === 'part' && e.rsync) this.firstBlocks.set(e.key, e.rsync);
    }
    return this.firstBlocks.get(key);
  }

  private isTmp(file: string, key: string): boolean {
    return (this.tmpRegions.get(key) ?? []).some((r) => r.path === file);
  }
}
