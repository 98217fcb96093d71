import { LRUCache } from 'lru-cache';
import type { ImageLayout, Region } from './layout.js';
import type { PartBytes, RawBytes } from './ports.js';
import { settleEach } from '../util/settle.js';

export interface ReaderOptions {
  /** Bytes of read-ahead blocks kept in memory. */
  readaheadMemory: number;
  /** Size of one read-ahead block. */
  blockSize: number;
  /** Blocks fetched ahead of a sequential reader. */
  readaheadBlocks: number;
  /** Bytes of the image past a sequential reader whose parts are located (fetched) ahead; 0: off. */
  prefetchBytes: number;
  /**
   * How far that reaches once the stream is long: twice the stream's length so far, between `prefetchBytes`
   * and this. A short sequential read (a loop-mounted file system reading a table) fetches no more ahead than
   * before; a `cp` keeps the mirror's connections busy through stretches of small parts.
   */
  prefetchMaxBytes: number;
}

/** A read-ahead block: its bytes once read, and the buffer they are read into (reused once evicted). */
interface Block {
  data: Promise<Buffer>;
  buf: Buffer;
  /** The sources finished writing into `buf` (successfully or not). */
  settled: boolean;
  /** …and successfully: `buf` holds the image's bytes. */
  ok: boolean;
  /** Reads copying out of it right now (across an await): its buffer must not be reused meanwhile. */
  pins: number;
}

/** Where a stream's last read ended: its reads so far (`streak`), when it last read, and where it started. */
interface StreamEnd {
  streak: number;
  at: number;
  start: number;
}

/** A stream that read within this long counts as active when the read-ahead budget is shared. */
const STREAM_ACTIVE_MS = 1000;
/**
 * Regions of one read (readInto) read at once, the rest as those end: more than a real image puts in a block (a 4 MiB
 * block of small packages has tens), so only a template cut into tiny regions waits (each job holds a few KB).
 */
const READ_JOBS_AT_ONCE = 256;
/** Read ends remembered (ImageReader.streamEnds): streams told apart at once. */
const STREAM_ENDS = 64;
/** Reads a stream's read may come before the one it follows, and still continue it (continuedStream). */
const REORDERED_READS = 4;

export const DEFAULT_READER_OPTIONS: ReaderOptions = {
  readaheadMemory: 64 << 20,
  blockSize: 1 << 20,
  readaheadBlocks: 8,
  prefetchBytes: 32 << 20,
  prefetchMaxBytes: 96 << 20,
};

/**
 * `read(offset, length)` of the whole image: splits the range over the layout's regions, takes raw bytes
 * and part bytes from the two ports (image/ports.ts). Knows nothing of FUSE, HTTP or where bytes live.
 *
 * Sequential readers (FUSE hands us 128 KiB at a time) are detected and served from 1 MiB blocks read
 * ahead with bounded concurrency, so a stream is not limited to one request's latency at a time.
 *
 * Fields: `blocks`, `spare` and `streamEnds` are the reader's own (single-threaded: only the event loop
 * touches them, between awaits). A block's `buf` belongs to the sources until `settled`, then to the
 * reads that pin it; only a settled, unpinned block's buffer goes back to `spare`. No locks: every read
 * awaits its block's `data`, and a source never writes into a buffer after the read it serves returned.
 */
export class ImageReader {
  private readonly blocks: LRUCache<number, Block>;
  /** Buffers of evicted blocks, reused for new ones: fresh 1 MiB buffers cost page faults and GC. */
  private readonly spare: Buffer[] = [];
  private readonly opts: ReaderOptions;
  /**
   * Ends of recent reads, oldest first, at most STREAM_ENDS: a read starting at one of them (or a little past one:
   * continuedStream) continues a stream. A Map, not an LRUCache: it is walked each time a stream enters a block
   * (readaheadDepth), and the LRU's iterators took ~4 % of the main thread's CPU in a sequential read of a warm mount.
   */
  private readonly streamEnds = new Map<number, StreamEnd>();
  /** Blocks read whole lately (indexes), for blockRead: a part is passed once every block it lies in was read. */
  private readonly readBlocks = new LRUCache<number, true>({ max: 4096 });
  /** Told as a stream enters each block (watchStreams). */
  private streamWatcher: ((start: number, end: number) => void) | undefined;
  /** How far past a stream's end a read of a given length may come and still continue it, beyond REORDERED_READS reads (allowReordering). */
  private reorderWindow: (length: number) => number = () => 0;
  readonly stats = { reads: 0, bytesServed: 0, readaheadHits: 0, errors: 0 };

  constructor(
    readonly layout: ImageLayout,
    private readonly raw: RawBytes,
    private readonly parts: PartBytes,
    opts: Partial<ReaderOptions> = {},
  ) {
    this.opts = { ...DEFAULT_READER_OPTIONS, ...opts };
    // Blocks only need to live from read-ahead to use: re-reads come from the kernel's page cache
    // (kernelCache), so more than a few streams' worth is memory for nothing (2 GB copy: VmHWM 202 -> 167 MB).
    const maxBlocks = Math.max(2, Math.min(3 * this.opts.readaheadBlocks, Math.floor(this.opts.readaheadMemory / this.opts.blockSize)));
    this.blocks = new LRUCache<number, Block>({ max: maxBlocks, dispose: (b) => this.recycle(b) });
  }

  get size(): number {
    return this.layout.size;
  }

  /**
   * `watcher(start, end)` is called as a sequential stream enters each block: it began at `start` and has been read up
   * to `end` (fuse/drop-behind.ts: a mount drops the kernel's copy of the image behind a long stream). One watcher.
   */
  watchStreams(watcher: (start: number, end: number) => void): void {
    this.streamWatcher = watcher;
  }

  /**
   * A read of `length` bytes up to `window(length)` bytes past the end of a stream continued at least once (anywhere
   * within that, not only whole reads) still continues it: a mount whose kernel reads ahead in a larger window than its
   * default hands a stream's reads over further out of order, with edges off the multiples of one read
   * (fuse/kernel-read-ahead.ts). One function: a later call replaces it.
   */
  allowReordering(window: (length: number) => number): void {
    this.reorderWindow = window;
  }

  /** Exactly the image's bytes in [offset, offset+length), clipped at the end of the image. */
  async read(offset: number, length: number): Promise<Buffer> {
    const end = Math.min(this.layout.size, offset + length);
    if (offset < 0 || !Number.isSafeInteger(offset) || offset >= end) return Buffer.alloc(0);
    const out = Buffer.allocUnsafe(end - offset);
    await this.readTo(offset, out);
    return out;
  }

  /**
   * The image's bytes from `offset` into `target` (as many as it holds, clipped at the end of the image);
   * returns how many. For front ends that have a buffer of their own (FUSE): no buffer per request and
   * one copy less than `read`.
   */
  async readTo(offset: number, target: Buffer): Promise<number> {
    const end = Math.min(this.layout.size, offset + target.length);
    if (offset < 0 || !Number.isSafeInteger(offset) || offset >= end) return 0;
    this.stats.reads++;
    const before = this.continuedStream(offset, end - offset);
    const streak = before?.streak ?? 0;
    const start = before?.start ?? offset;
    this.noteStreamEnd(end, { streak: streak + 1, at: Date.now(), start });
    const out = target.subarray(0, end - offset);
    try {
      // A block may span a missing part the request does not touch: then read just the request.
      if (streak >= 1) await this.copyFromBlocks(offset, end, out, streak === 1, end - start).catch(() => this.readInto(offset, out));
      else if (this.inReadBlocks(offset, end)) await this.copyBlocks(offset, end, out).catch(() => this.readAlone(offset, out));
      else await this.readAlone(offset, out);
      this.stats.bytesServed += out.length;
      return out.length;
    } catch (err) {
      this.stats.errors++;
      throw err;
    }
  }

  /** Remembers where a read ended, as the newest end; the oldest goes past STREAM_ENDS. */
  private noteStreamEnd(end: number, stream: StreamEnd): void {
    this.streamEnds.delete(end);
    this.streamEnds.set(end, stream);
    if (this.streamEnds.size > STREAM_ENDS) this.streamEnds.delete(this.streamEnds.keys().next().value!);
  }

  /**
   * The stream a read of [offset, offset+length) continues, if any: the one that ended at `offset` (its entry is used
   * up), else one that ended at most REORDERED_READS reads of this length before it, a whole number of them, or (a
   * stream already continued) anywhere within the reorder window (allowReordering). That is a read FUSE's threads
   * handed over before the one(s) it follows: in a `cp` of a default mount one read in seven came one 128 KiB request
   * early. The stream's entry stays for those; counted by exact ends only, each early read began a new stream, and the
   * stream's read-ahead fell to one block and its prefetch to the least (readaheadDepth).
   */
  private continuedStream(offset: number, length: number): StreamEnd | undefined {
    const exact = this.streamEnds.get(offset);
    if (exact) {
      this.streamEnds.delete(offset);
      return exact;
    }
    const reads = REORDERED_READS * length;
    const window = this.reorderWindow(length);
    let nearest: { end: number; stream: StreamEnd } | undefined;
    for (const [end, stream] of this.streamEnds.entries()) {
      const gap = offset - end;
      // The window only for a stream continued at least once: two lone reads near each other stay lone reads.
      const fits = (gap <= reads && gap % length === 0) || (gap <= window && stream.streak >= 2);
      if (gap > 0 && fits && (!nearest || end > nearest.end)) nearest = { end, stream };
    }
    return nearest?.stream;
  }

  /**
   * A read served by itself (readInto), not from blocks: the first of a stream, or one that FUSE's threads handed over
   * further ahead of the one it follows than continuedStream takes. Blocks it covers whole count as read (blockRead),
   * as if read for a stream.
   */
  private async readAlone(offset: number, out: Buffer): Promise<void> {
    await this.readInto(offset, out);
    const bs = this.opts.blockSize;
    const end = offset + out.length;
    for (let i = Math.ceil(offset / bs); (i + 1) * bs <= end || (i * bs < end && end === this.layout.size); i++) this.blockRead(i);
  }

  /** The image's bytes from `offset` into all of `target`; returns only once no source writes into it. */
  async readInto(offset: number, target: Buffer): Promise<void> {
    await settleEach(this.readJobs(offset, target), READ_JOBS_AT_ONCE);
  }

  /**
   * The jobs of readInto, one per region, but raw regions in a row whose bytes follow each other in the template's raw
   * data are one read of it: a template may cut its raw data into regions of a byte (a valid 4 MB one gave a 4 MiB
   * block 524,287 jobs).
   */
  private *readJobs(offset: number, target: Buffer): Generator<(signal: AbortSignal) => Promise<void>> {
    type RawRun = { from: number; length: number; at: number };
    const rawJob = ({ from, length, at }: RawRun) => (signal: AbortSignal) => this.raw.readInto(from, length, target, at, signal);
    let at = 0;
    let raw: RawRun | undefined;
    for (const { region, from, length } of this.layout.slices(offset, target.length)) {
      const to = at;
      at += length;
      if (region.kind === 'raw' && raw && raw.from + raw.length === region.rawOffset + from) {
        raw.length += length;
        continue;
      }
      if (raw) yield rawJob(raw);
      raw = undefined;
      if (region.kind === 'raw') raw = { from: region.rawOffset + from, length, at: to };
      else yield (signal) => this.parts.readInto(region.key, from, length, target, to, signal);
    }
    if (raw) yield rawJob(raw);
  }

  private block(index: number): Block {
    const known = this.blocks.get(index);
    if (known) {
      this.stats.readaheadHits++;
      return known;
    }
    const bs = this.opts.blockSize;
    const buf = this.spare.pop() ?? Buffer.allocUnsafeSlow(bs);
    const target = buf.subarray(0, Math.min(bs, this.layout.size - index * bs));
    const block: Block = { buf, settled: false, ok: false, pins: 0, data: Promise.resolve(target) };
    // readInto returns only once no source writes into the buffer any more, failed or not.
    block.data = this.readInto(index * bs, target)
      .finally(() => (block.settled = true))
      .then(() => {
        block.ok = true;
        this.blockRead(index);
        return target;
      });
    // A failed block is retried by the next read.
    block.data.catch(() => this.blocks.peek(index) === block && this.blocks.delete(index));
    this.blocks.set(index, block);
    return block;
  }

  /** Keeps an evicted block's buffer for reuse, unless a source or a read may still be using it. */
  private recycle(block: Block): void {
    if (block.settled && block.pins === 0 && this.spare.length < this.opts.readaheadBlocks) this.spare.push(block.buf);
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

  /**
   * Blocks read ahead of one stream: the block budget shared by the streams active now. With more streams
   * than the budget holds at full depth, blocks read ahead were evicted before their stream reached them and
   * read again (8 parallel ranged HTTP clients: 68 MB/s at 22 CPU-s per GB).
   */
  private readaheadDepth(): number {
    const now = Date.now();
    // Continued at least once: a stream, not a random read. One stream may have several ends (continuedStream): counted once.
    const streams = new Set<number>();
    for (const s of this.streamEnds.values()) if (s.streak >= 2 && now - s.at < STREAM_ACTIVE_MS) streams.add(s.start);
    // Each stream holds the block it reads, the blocks ahead, and at a block boundary one more for a moment.
    const share = Math.floor(this.blocks.max / Math.max(1, streams.size)) - 2;
    return Math.max(1, Math.min(this.opts.readaheadBlocks, share));
  }

  /**
   * When a stream starts, then once per block it enters: starts reading the blocks ahead of [offset, end)
   * and has the parts further ahead fetched meanwhile. Reads within a block start nothing new (a block
   * ahead that failed is read again by the read that needs it): counting the active streams and walking
   * the layout 32 MiB ahead on each of FUSE's 128 KiB reads was about a tenth of the reader's CPU in a
   * profile of a sequential read.
   */
  private readAhead(offset: number, end: number, newStream: boolean, streamLength: number): void {
    const bs = this.opts.blockSize;
    const last = Math.floor((end - 1) / bs);
    if (!newStream && last === Math.floor(offset / bs) && offset % bs !== 0) return;
    this.streamWatcher?.(end - streamLength, end);
    const lastBlock = Math.floor((this.layout.size - 1) / bs);
    for (let i = last + 1; i <= Math.min(lastBlock, last + this.readaheadDepth()); i++) {
      if (!this.blocks.has(i)) void this.block(i).data.catch(() => undefined);
    }
    if (this.opts.prefetchBytes > 0) this.parts.prefetch(this.partsIn(end, this.prefetchReach(streamLength)));
  }

  /** How far ahead of a stream of `streamLength` bytes its parts are located (ReaderOptions.prefetchMaxBytes). */
  private prefetchReach(streamLength: number): number {
    const { prefetchBytes, prefetchMaxBytes } = this.opts;
    return Math.max(prefetchBytes, Math.min(prefetchMaxBytes, 2 * streamLength));
  }

  /** Serves a sequential read from blocks into `out` (waiting for those not read yet) and reads ahead. */
  private async copyFromBlocks(offset: number, end: number, out: Buffer, newStream: boolean, streamLength: number): Promise<void> {
    this.readAhead(offset, end, newStream, streamLength);
    await this.copyBlocks(offset, end, out);
  }

  /**
   * Every block [offset, end) lies in was read already: a stream's read that FUSE's threads handed over after the one
   * it follows is served from them (not read from the sources again, whose files may have left the page cache).
   */
  private inReadBlocks(offset: number, end: number): boolean {
    const bs = this.opts.blockSize;
    for (let i = Math.floor(offset / bs); i <= Math.floor((end - 1) / bs); i++) if (!this.blocks.peek(i)?.ok) return false;
    return true;
  }

  /** Copies [offset, end) out of the blocks into `out`, waiting for those not read yet. */
  private async copyBlocks(offset: number, end: number, out: Buffer): Promise<void> {
    const bs = this.opts.blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    for (let i = first; i <= last; i++) {
      const block = this.block(i);
      block.pins++;
      try {
        const data = await block.data;
        const blockStart = i * bs;
        const from = Math.max(offset, blockStart);
        const to = Math.min(end, blockStart + data.length);
        data.copy(out, from - offset, from - blockStart, to - blockStart);
      } finally {
        block.pins--;
      }
    }
  }

  /**
   * Block `index` was read whole for a stream: the parts whose last place in the image lies in blocks all read now are
   * passed (PartBytes.passed). FUSE's threads hand a `cp`'s reads over in any order, and blocks end in any order, so
   * whichever of a part's blocks ends last passes it.
   */
  private blockRead(index: number): void {
    this.readBlocks.set(index, true);
    const bs = this.opts.blockSize;
    const keys: string[] = [];
    for (const { region } of this.layout.slices(index * bs, bs)) {
      if (region.kind !== 'part' || !this.isLastPlace(region)) continue;
      let all = true;
      for (let i = Math.floor(region.offset / bs); all && i <= Math.floor((region.offset + region.length - 1) / bs); i++) all = this.readBlocks.has(i);
      if (all) keys.push(region.key);
    }
    if (keys.length > 0) this.parts.passed?.(keys);
  }

  /**
   * A sequential reader has read all of [from, to) in order (make-image's stream): tells the parts whose last place in
   * the image ends inside it (PartBytes.passed), which that reader will not read again.
   */
  passedThrough(from: number, to: number): void {
    if (!this.parts.passed || to <= from) return;
    const keys: string[] = [];
    for (const { region } of this.layout.slices(from, to - from)) {
      if (region.kind === 'part' && region.offset + region.length <= to && this.isLastPlace(region)) keys.push(region.key);
    }
    if (keys.length > 0) this.parts.passed(keys);
  }

  /** The region is its part's last place in the image (a part may sit at several: it is passed after the last). */
  private isLastPlace(region: Region & { kind: 'part' }): boolean {
    return this.layout.parts.get(region.key)!.offsets.at(-1) === region.offset;
  }
}
