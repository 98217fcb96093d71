import type { Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { detectDisc, fileReader, listDisc, DiscFormatError } from '../discfs/index.js';
import { fsPath, shown } from '../format/byte-string.js';
import { errorMessage } from '../format/errors.js';
import { RollingRsyncSum64 } from '../format/rsync-rolling.js';
import type { Desc } from '../format/template.js';
import type { PartNeed } from '../image/layout.js';
import type { FileRange, RsyncMatches } from '../util/worker-protocol.js';
import { oncePerKey } from '../util/once-per-key.js';

/** Finds where a file holds windows with these RsyncSum64 keys (WorkerPool.rsyncScan). */
export type RsyncScan = (file: string, sums: string[], window: number, step: number, maxMatches: number) => Promise<RsyncMatches>;
import { identityOfStats, sameIdentity, type FileIdentity } from './file-identity.js';

/**
 * What a --scan or --scan-deep path gets that is neither a file, a folder nor a block device: a character device or a
 * pipe cannot be read at an offset (a block device, a disc in its drive, is read as an image: see DiscImages).
 */
export const NOT_SCANNED = 'not a regular file, folder or block device (a character device or a pipe): not scanned';

/** Why a device named by --scan or --scan-deep cannot be read, in a few words (EACCES: a regular user lacks its group). */
export function deviceProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EACCES' || code === 'EPERM') return `cannot open it: permission denied (${code}; a user reads a disc drive through its group, usually cdrom)`;
  if (code === 'ENOMEDIUM') return 'no disc in the drive (ENOMEDIUM)';
  return `cannot read it: ${errorMessage(err)}`;
}

/** A place inside an old disc image that may hold a part: the ranges of one of its files, or a region found by the deep scan. */
export interface ImagePlace {
  image: string;
  ranges: FileRange[];
  /** The file's path on the disc ('/'-separated, no leading slash); none for a deep-scan place. */
  path?: string;
}

/** Smaller files are not looked into: a disc's first volume descriptor ends at byte 34816. */
const MIN_IMAGE_BYTES = 64 * 1024;
/** Lines of an image's listing warnings logged, at most. */
const LOGGED_WARNINGS = 5;
/** The window of the template's RsyncSum64 (jigdo-file's default block length). */
const RSYNC_WINDOW = 1024;
/** Deep scan: the boundaries looked at. */
const DEEP_STEP = 512;
/** Deep-scan matches kept, at most (each is only a candidate, confirmed by its checksum when needed). */
const MAX_DEEP_MATCHES = 1 << 20;

/** The size of the block device `file` (stat: `st`), once it was opened for reading (EACCES, ENOMEDIUM throw here). */
async function deviceSize(file: string, st: Stats): Promise<number> {
  await (await open(fsPath(file), 'r')).close();
  return (await identityOfStats(st)).size;
}

/** 4.1 GB, 12.3 MB, 900 KB (decimal units, as the progress line shows them). */
function bytesText(n: number): string {
  for (const [unit, mult] of [['GB', 1e9], ['MB', 1e6], ['KB', 1e3]] as const) if (n >= mult) return `${(n / mult).toFixed(1)} ${unit}`;
  return `${n} bytes`;
}

/**
 * Old disc images as part sources (issue 10): a `--scan` file whose volume descriptors say ISO9660 or UDF is
 * listed (src/discfs/), and each of its files whose size is a part's becomes a candidate at its extents, read
 * straight from the image. `--scan-deep FILE` looks at every 512-byte boundary of a file the reader does not
 * understand for the template's RsyncSum64 of a part's first KiB. Nothing here vouches for bytes: candidates
 * go through verified-copy.ts like any local file.
 *
 * Fields: `bySize` and `deep` are filled by consider/deepScan (and refresh, when an image changed);
 * `listedAs` is each image's identity when listed (a block device's when last looked at, listed or not); `used` counts the parts found inside each image.
 */
export class DiscImages {
  private readonly bySize = new Map<number, ImagePlace[]>();
  private readonly deep = new Map<string, ImagePlace[]>();
  private readonly listedAs = new Map<string, FileIdentity>();
  private readonly used = new Map<string, Map<string, number>>();
  private deepMatches = 0;
  /** Images being listed again (concurrent look-ups wait for the same listing). */
  private readonly refreshing = new Map<string, Promise<void>>();

  constructor(
    private readonly sizes: Set<number>,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Lists `file` when it is a disc image (one or two small reads tell); true when it was one. `device`: a block
   * device named by --scan (a disc in its drive), by its identity now; it gets a line saying why it is not looked
   * into, and is looked at again once another disc is in it (an empty drive too: candidates).
   */
  async consider(file: string, size: number, device?: FileIdentity): Promise<boolean> {
    if (device) this.listedAs.set(file, device);
    const passed = (why: string): false => {
      if (device) this.log(`scan: ${shown(file)}: ${why}: not scanned`);
      return false;
    };
    if (size < MIN_IMAGE_BYTES) return passed(size === 0 ? 'no disc in the drive (0 bytes)' : `too small for a disc image (${size} bytes)`);
    let fh;
    try {
      fh = await open(fsPath(file), 'r');
    } catch (err) {
      return passed(deviceProblem(err));
    }
    try {
      // Taken before anything is read: a file (or a disc) changed while it is listed is listed again at its next use.
      const id = await identityOfStats(await fh.stat());
      const read = fileReader(fh);
      if ((await detectDisc(read, id.size)) === null) return passed('no ISO9660 or UDF volume on it (--scan-deep DEVICE searches it for parts)');
      const listing = await listDisc(read, id.size);
      for (const w of listing.warnings.slice(0, LOGGED_WARNINGS)) this.log(`scan: ${shown(file)}: ${w}`);
      this.listedAs.set(file, id);
      let places = 0;
      for (const f of listing.files) {
        if (!this.sizes.has(f.size)) continue;
        const list = this.bySize.get(f.size) ?? [];
        list.push({ image: file, ranges: f.extents, path: f.path });
        this.bySize.set(f.size, list);
        places++;
      }
      this.log(`scan: ${shown(file)}: ${listing.kind} image "${listing.volumeId}", ${listing.files.length} files, ${places} of a part's size`);
      return true;
    } catch (err) {
      this.log(`scan: ${shown(file)}: not looked into: ${err instanceof DiscFormatError ? err.message : errorMessage(err)}`);
      return false;
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /** The image changed since it was listed (an old listing would only give misses): list it again, once at a time. */
  private refresh(image: string): Promise<void> {
    return oncePerKey(this.refreshing, image, () => this.relist(image));
  }

  private async relist(image: string): Promise<void> {
    const before = this.listedAs.get(image);
    const st = await stat(fsPath(image)).catch(() => undefined);
    const now = st && (await identityOfStats(st).catch(() => undefined));
    if (!before || (now && sameIdentity(before, now))) return;
    this.listedAs.delete(image);
    for (const [size, list] of this.bySize) this.bySize.set(size, list.filter((p) => p.image !== image));
    if (now && (st.isFile() || st.isBlockDevice())) {
      this.log(`scan: ${shown(image)} changed${st.isBlockDevice() ? ' (another disc, or none)' : ''}: listing it again`);
      await this.consider(image, now.size, st.isBlockDevice() ? now : undefined);
    }
  }

  /** The places inside images that may hold the part, after listing again any image that changed. */
  async candidates(need: PartNeed): Promise<ImagePlace[]> {
    for (const image of [...this.listedAs.keys()]) await this.refresh(image);
    await Promise.all(this.refreshing.values()); // an image dropped from listedAs while being listed again
    return [...(this.bySize.get(need.length) ?? []), ...(this.deep.get(need.key) ?? [])];
  }

  /** A part was found inside `image` (for `missing` and `status`). */
  noteFound(image: string, key: string, length: number): void {
    const parts = this.used.get(image) ?? new Map<string, number>();
    parts.set(key, length);
    this.used.set(image, parts);
  }

  /**
   * A part noted as found inside `image` turned out wrong there (taken unhashed, then caught by the image checksum), or
   * could not be read there again (a disc swapped or ejected, an I/O error): it no longer counts as found in it.
   */
  noteLost(image: string, key: string): void {
    const parts = this.used.get(image);
    if (!parts?.delete(key)) return;
    if (parts.size === 0) this.used.delete(image);
  }

  /** Parts found inside each image so far, and their bytes. */
  summary(): Array<{ image: string; parts: number; bytes: number }> {
    return [...this.used].map(([image, parts]) => ({ image, parts: parts.size, bytes: [...parts.values()].reduce((a, b) => a + b, 0) }));
  }

  /** One line per image parts were found in: `from debian-12.7.0-amd64-DVD-1.iso: 3,412 parts, 4.1 GB`. */
  summaryLines(): string[] {
    return this.summary().map((u) => `from ${shown(path.basename(u.image))}: ${u.parts.toLocaleString('en-US')} parts, ${bytesText(u.bytes)}`);
  }

  /**
   * `--scan-deep FILE`: every 512-byte boundary whose next KiB has the RsyncSum64 the template gives for a
   * part's first KiB is a candidate for that part (confirmed by its checksum only when the part is needed).
   * The file is read once, on a worker thread (`scan`: WorkerPool.rsyncScan).
   */
  async deepScan(file: string, desc: Desc, scan: RsyncScan): Promise<void> {
    const wanted = new Map<string, Array<{ key: string; length: number }>>();
    for (const e of desc.entries) {
      if (e.kind !== 'part' || !e.rsync || e.length < RSYNC_WINDOW) continue;
      const k = RollingRsyncSum64.keyOf(e.rsync);
      const list = wanted.get(k) ?? [];
      if (!list.some((x) => x.key === e.key)) list.push({ key: e.key, length: e.length });
      wanted.set(k, list);
    }
    const st = await stat(fsPath(file)).catch((err: unknown) => {
      this.log(`scan-deep: cannot read ${shown(file)}: ${errorMessage(err)}`);
      return undefined;
    });
    if (st?.isDirectory()) this.log(`scan-deep: ${shown(file)}: a folder: not scanned (--scan-deep takes a file; --scan takes folders)`);
    else if (st && !st.isFile() && !st.isBlockDevice()) this.log(`scan-deep: ${shown(file)}: ${NOT_SCANNED}`);
    if (!st || !(st.isFile() || st.isBlockDevice()) || wanted.size === 0) return;
    // A device (a disc in its drive): its size from sysfs, and whether we may read it said here in one line.
    const size = st.isFile() ? st.size : await deviceSize(file, st).catch((err: unknown) => this.log(`scan-deep: ${shown(file)}: ${deviceProblem(err)}: not scanned`));
    if (size === undefined) return;
    const sums = [...wanted.keys()];
    let matches;
    try {
      matches = await scan(file, sums, RSYNC_WINDOW, DEEP_STEP, MAX_DEEP_MATCHES - this.deepMatches);
    } catch (err) {
      this.log(`scan-deep: cannot read ${shown(file)}: ${errorMessage(err)}`);
      return;
    }
    let found = 0;
    matches.offsets.forEach((offset, i) => {
      for (const p of wanted.get(sums[matches.which[i]!]!) ?? []) {
        if (offset + p.length > size) continue;
        const list = this.deep.get(p.key) ?? [];
        list.push({ image: file, ranges: [{ offset, length: p.length }] });
        this.deep.set(p.key, list);
        this.deepMatches++;
        found++;
      }
    });
    this.log(`scan-deep: ${shown(file)}: ${found} candidate places`);
  }
}
