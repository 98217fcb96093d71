import { open, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { detectDisc, listDisc, DiscFormatError, type PositionalRead } from '../discfs/index.js';
import { fsPath, shown } from '../format/byte-string.js';
import { errorMessage } from '../format/errors.js';
import { RollingRsyncSum64 } from '../format/rsync-rolling.js';
import type { Desc } from '../format/template.js';
import type { PartNeed } from '../image/layout.js';
import type { FileRange } from '../util/worker-protocol.js';
import { identityOf, sameIdentity, type FileIdentity } from './hash-index.js';

/** A place inside an old disc image that may hold a part: the ranges of one of its files, or a region found by the deep scan. */
export interface ImagePlace {
  image: string;
  ranges: FileRange[];
}

/** Smaller files are not looked into: a disc's first volume descriptor ends at byte 34816. */
const MIN_IMAGE_BYTES = 64 * 1024;
/** Lines of an image's listing warnings logged, at most. */
const LOGGED_WARNINGS = 5;
/** The window of the template's RsyncSum64 (jigdo-file's default block length). */
const RSYNC_WINDOW = 1024;
/** Deep scan: boundaries looked at, and bytes read at a time. */
const DEEP_STEP = 512;
const DEEP_CHUNK = 4 << 20;
/** Deep-scan matches kept, at most (each is only a candidate, confirmed by its checksum when needed). */
const MAX_DEEP_MATCHES = 1 << 20;

/** 4.1 GB, 12.3 MB, 900 KB (decimal units, as the progress line shows them). */
function bytesText(n: number): string {
  for (const [unit, mult] of [['GB', 1e9], ['MB', 1e6], ['KB', 1e3]] as const) if (n >= mult) return `${(n / mult).toFixed(1)} ${unit}`;
  return `${n} bytes`;
}

function readerOf(fh: FileHandle): PositionalRead {
  return async (offset, length) => {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  };
}

/**
 * Old disc images as part sources (issue 10): a `--scan` file whose volume descriptors say ISO9660 or UDF is
 * listed (src/discfs/), and each of its files whose size is a part's becomes a candidate at its extents, read
 * straight from the image. `--scan-deep FILE` looks at every 512-byte boundary of a file the reader does not
 * understand for the template's RsyncSum64 of a part's first KiB. Nothing here vouches for bytes: candidates
 * go through verified-copy.ts like any local file.
 *
 * Fields: `bySize` and `deep` are filled by consider/deepScan (and refresh, when an image changed);
 * `listedAs` is each image's identity when listed; `used` counts the parts found inside each image.
 */
export class DiscImages {
  private readonly bySize = new Map<number, ImagePlace[]>();
  private readonly deep = new Map<string, ImagePlace[]>();
  private readonly listedAs = new Map<string, FileIdentity>();
  private readonly used = new Map<string, Map<string, number>>();
  private deepMatches = 0;

  constructor(
    private readonly sizes: Set<number>,
    private readonly log: (line: string) => void,
  ) {}

  /** Lists `file` when it is a disc image (one or two small reads tell); true when it was one. */
  async consider(file: string, size: number): Promise<boolean> {
    if (size < MIN_IMAGE_BYTES) return false;
    const fh = await open(fsPath(file), 'r').catch(() => undefined);
    if (!fh) return false;
    try {
      const read = readerOf(fh);
      if ((await detectDisc(read, size)) === null) return false;
      const id = identityOf(await fh.stat());
      const listing = await listDisc(read, size);
      for (const w of listing.warnings.slice(0, LOGGED_WARNINGS)) this.log(`scan: ${shown(file)}: ${w}`);
      this.listedAs.set(file, id);
      let places = 0;
      for (const f of listing.files) {
        if (!this.sizes.has(f.size)) continue;
        const list = this.bySize.get(f.size) ?? [];
        list.push({ image: file, ranges: f.extents });
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

  /** The image changed since it was listed (an old listing would only give misses): list it again. */
  private async refresh(image: string): Promise<void> {
    const before = this.listedAs.get(image);
    const st = await stat(fsPath(image)).catch(() => undefined);
    if (!before || (st && sameIdentity(before, identityOf(st)))) return;
    this.listedAs.delete(image);
    for (const [size, list] of this.bySize) this.bySize.set(size, list.filter((p) => p.image !== image));
    if (st?.isFile()) {
      this.log(`scan: ${shown(image)} changed: listing it again`);
      await this.consider(image, st.size);
    }
  }

  /** The places inside images that may hold the part, after listing again any image that changed. */
  async candidates(need: PartNeed): Promise<ImagePlace[]> {
    for (const image of [...this.listedAs.keys()]) await this.refresh(image);
    return [...(this.bySize.get(need.length) ?? []), ...(this.deep.get(need.key) ?? [])];
  }

  /** A part was found inside `image` (for `missing` and `status`). */
  noteFound(image: string, key: string, length: number): void {
    const parts = this.used.get(image) ?? new Map<string, number>();
    parts.set(key, length);
    this.used.set(image, parts);
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
   * Reads the file once, 4 MiB at a time.
   */
  async deepScan(file: string, desc: Desc): Promise<void> {
    const wanted = new Map<string, Array<{ key: string; length: number }>>();
    for (const e of desc.entries) {
      if (e.kind !== 'part' || !e.rsync || e.length < RSYNC_WINDOW) continue;
      const k = RollingRsyncSum64.keyOf(e.rsync);
      const list = wanted.get(k) ?? [];
      if (!list.some((x) => x.key === e.key)) list.push({ key: e.key, length: e.length });
      wanted.set(k, list);
    }
    const fh = await open(fsPath(file), 'r').catch((err: unknown) => {
      this.log(`scan-deep: cannot read ${shown(file)}: ${errorMessage(err)}`);
      return undefined;
    });
    if (!fh || wanted.size === 0) return void (await fh?.close());
    try {
      const size = (await fh.stat()).size;
      const found = await this.sweep(fh, size, wanted, file);
      this.log(`scan-deep: ${shown(file)}: ${found} candidate places`);
    } finally {
      await fh.close();
    }
  }

  private async sweep(fh: FileHandle, size: number, wanted: Map<string, Array<{ key: string; length: number }>>, file: string): Promise<number> {
    const sum = new RollingRsyncSum64(RSYNC_WINDOW);
    const buf = Buffer.alloc(DEEP_CHUNK + RSYNC_WINDOW);
    let found = 0;
    for (let base = 0; base + RSYNC_WINDOW <= size; base += DEEP_CHUNK) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - base), base);
      for (let at = 0; at < DEEP_CHUNK && at + RSYNC_WINDOW <= bytesRead; at += DEEP_STEP) {
        sum.reset(buf, at);
        const parts = wanted.get(sum.key());
        if (!parts) continue;
        for (const p of parts) {
          if (base + at + p.length > size || this.deepMatches >= MAX_DEEP_MATCHES) continue;
          const list = this.deep.get(p.key) ?? [];
          list.push({ image: file, ranges: [{ offset: base + at, length: p.length }] });
          this.deep.set(p.key, list);
          this.deepMatches++;
          found++;
        }
      }
    }
    return found;
  }
}
