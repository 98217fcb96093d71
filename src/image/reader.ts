import { LRUCache } from 'lru-cache';
import type { PartStore } from '../sources/parts.js';
import type { TemplateData } from '../sources/template-data.js';
import type { ImageLayout } from './layout.js';

export interface ReaderOptions {
  /** Bytes of read-ahead blocks kept in memory. */
  readaheadMemory: number;
  /** Size of one read-ahead block. */
  blockSize: number;
  /** Blocks fetched ahead of a sequential reader. */
  readaheadBlocks: number;
  /** Bytes of the image past a sequential reader whose parts are located (fetched) ahead; 0: off. */
  prefetchBytes: number;
}

export const DEFAULT_READER_OPTIONS: ReaderOptions = { readaheadMemory: 64 << 20, blockSize: 1 << 20, readaheadBlocks: 8, prefetchBytes: 32 << 20 };

/**
 * `read(offset, length)` of the whole image: splits the range over the layout's regions, takes raw bytes
 * from the template and part bytes from the part store. Knows nothing of FUSE or HTTP.
 *
 * Sequential readers (FUSE hands us 128 KiB at a time) are detected and served from 1 MiB blocks read
 * ahead with bounded concurrency, so a stream is not limited to one request's latency at a time.
 */
export class ImageReader {
  private readonly blocks: LRUCache<number, Promise<Buffer>>;
  private readonly opts: ReaderOptions;
  /** Ends of recent reads: a read starting at one of them continues a stream. */
  private readonly streamEnds = new LRUCache<number, number>({ max: 64 });
  readonly stats = { reads: 0, bytesServed: 0, readaheadHits: 0, errors: 0 };

  constructor(
    readonly layout: ImageLayout,
    private readonly raw: TemplateData,
    private readonly parts: PartStore,
    opts: Partial<ReaderOptions> = {},
  ) {
    this.opts = { ...DEFAULT_READER_OPTIONS, ...opts };
    const maxBlocks = Math.max(2, Math.floor(this.opts.readaheadMemory / this.opts.blockSize));
    this.blocks = new LRUCache<number, Promise<Buffer>>({ max: maxBlocks });
  }

  get size(): number {
    return this.layout.size;
  }

  /** Exactly the image's bytes in [offset, offset+length), clipped at the end of the image. */
  async read(offset: number, length: number): Promise<Buffer> {
    const end = Math.min(this.layout.size, offset + length);
    if (offset < 0 || !Number.isSafeInteger(offset) || offset >= end) return Buffer.alloc(0);
    this.stats.reads++;
    const streak = this.streamEnds.get(offset) ?? 0;
    this.streamEnds.delete(offset);
    this.streamEnds.set(end, streak + 1);
    try {
      // A block may span a missing part the request does not touch: then read just the request.
      const out =
        streak >= 1
          ? await this.readViaBlocks(offset, end, streak === 1).catch(() => this.readDirect(offset, end - offset))
          : await this.readDirect(offset, end - offset);
      this.stats.bytesServed += out.length;
      return out;
    } catch (err) {
      this.stats.errors++;
      throw err;
    }
  }

  /** Reads straight from the sources into one buffer. */
  async readDirect(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(Math.min(length, this.layout.size - offset));
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, target: Buffer): Promise<void> {
    const jobs: Promise<void>[] = [];
    let at = 0;
    for (const { region, from, length } of this.layout.slices(offset, target.length)) {
      jobs.push(
        region.kind === 'raw'
          ? this.raw.readInto(region.rawOffset + from, length, target, at)
          : this.parts.readInto(region.key, from, length, target, at),
      );
      at += length;
    }
    await Promise.all(jobs);
  }

  private block(index: number): Promise<Buffer> {
    let p = this.blocks.get(index);
    if (!p) {
      p = this.readDirect(index * this.opts.blockSize, this.opts.blockSize);
      p.catch(() => this.blocks.delete(index)); // a failed block is retried by the next read
      this.blocks.set(index, p);
    } else this.stats.readaheadHits++;
    return p;
  }

  /** The distinct parts in [offset, offset+length), at most 256 (the nearest). */
  private partsIn(offset: number, length: number): Set<string> {
    const keys = new Set<string>();
    for (const { region } of this.layout.slices(offset, length)) {
      if (region.kind === 'part') keys.add(region.key);
      if (keys.size >= 256) break;
    }
    return keys;
  }

  /** Serves a sequential read from blocks and starts fetching the next ones. */
  private async readViaBlocks(offset: number, end: number, newStream = false): Promise<Buffer> {
    const bs = this.opts.blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    const lastBlock = Math.floor((this.layout.size - 1) / bs);
    for (let i = last + 1; i <= Math.min(lastBlock, last + this.opts.readaheadBlocks); i++) {
      if (!this.blocks.has(i)) void this.block(i).catch(() => undefined);
    }
    // When a stream starts, then once per block it enters: have the parts further ahead fetched meanwhile.
    if (this.opts.prefetchBytes > 0 && (newStream || last > first || offset % bs === 0)) this.parts.prefetch(this.partsIn(end, this.opts.prefetchBytes));
    const out = Buffer.allocUnsafe(end - offset);
    for (let i = first; i <= last; i++) {
      const data = await this.block(i);
      const blockStart = i * bs;
      const from = Math.max(offset, blockStart);
      const to = Math.min(end, blockStart + data.length);
      data.copy(out, from - offset, from - blockStart, to - blockStart);
    }
    return out;
  }
}
