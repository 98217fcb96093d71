import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir, rename, rm, stat, utimes, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { createInflate, inflate, inflateSync } from 'node:zlib';
import { LRUCache } from 'lru-cache';
import type { ByteSource } from '../format/bytesource.js';
import { JigdoError, errorMessage } from '../format/errors.js';
import type { RawChunk, TemplateInfo } from '../format/template.js';
import type { WorkerPool } from '../util/worker-pool.js';
import { lastAtOrBefore } from '../util/binary-search.js';
import { settleEach, throwIfAborted, unlessAborted } from '../util/settle.js';
import { makeDirs } from '../util/make-dirs.js';
import { makeListed } from '../util/exit-leftovers.js';
import { oncePerKey } from '../util/once-per-key.js';
import { deadSpillFile, spillName, spillTempName } from '../cache/spill-name.js';
import { commitStamp, writtenSinceCommit } from '../cache/commit-stamp.js';
import { openRegular } from '../util/open-regular.js';

const inflateAsync = promisify(inflate);
/**
 * Chunks up to this size, compressed and not, are inflated on the calling thread: a trip through libuv's pool costs
 * more than inflating them, and a template cut into 262,143 chunks of a byte took 36 s of trips for one block. (The
 * payload too: one byte may come out of 100 MB of empty stored blocks, 0.1 s of the thread.)
 */
const INFLATE_HERE = 64 * 1024;

/** The decompression stopped at the part header's length (zlib's maxOutputLength; the bzip2 worker's output buffer). */
function inflatesPast(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || /BZ_OUTBUFF_FULL/.test(errorMessage(err));
}

const tooLong = (chunk: RawChunk): string => `decompresses to more than the ${chunk.uncompressedLength} bytes its part header says`;

function inflateChunk(payload: Buffer, opts: { maxOutputLength: number; chunkSize: number }): Promise<Buffer> {
  const small = opts.maxOutputLength <= INFLATE_HERE + 1 && payload.length <= INFLATE_HERE;
  return small ? Promise.resolve(inflateSync(payload, opts)) : inflateAsync(payload, opts);
}

/** Chunks bigger than this are inflated once into a spill file, so no random read re-inflates them. */
export const SPILL_THRESHOLD = 16 * 1024 * 1024;
/**
 * bzip2 chunks are at most 921,600 bytes from every producer; larger ones are refused rather than allocated. At most
 * the smallest memory LRU (8 MiB): a chunk larger than the LRU is never kept, and every read decompressed it again.
 */
const MAX_BZIP2_CHUNK = 8 * 1024 * 1024;
const SPILL_BLOCK = 1024 * 1024;
/**
 * Chunks one read loads at a time (readInto), the rest as those end: a read spans one or two chunks of a real template,
 * and one over a template's tiny chunks (262,143 of a byte each in a valid one) inflated them all at once (GBs).
 */
const CHUNKS_AT_ONCE = 4;

/**
 * zlib's output buffer for a chunk inflated whole: the chunk's size (+1, so that a longer stream shows as one),
 * so the pool thread inflates into one buffer that becomes the result. With zlib's default 16 KiB, the main thread
 * took each 16 KiB piece in a callback, then copied all of them into one buffer: with the template-heavy start of
 * the 2 GB fixture's image, the first block reached make-image's hashing worker 0.13 s later, and a local
 * make-image took 0.25 s longer (BENCHMARKS.md, "Smaller background syncs of the image").
 */
function outputBufferSize(chunk: RawChunk): number {
  return Math.max(64, chunk.uncompressedLength + 1); // zlib's smallest chunkSize is 64
}

export interface TemplateDataOptions {
  /** Bytes of decompressed chunks kept in memory. */
  memoryLimit: number;
  /** Folder for spill files of huge chunks (per template); created on demand. */
  spillDir: string;
  pool: WorkerPool;
  /**
   * Gives a finished spill file its name as a cache file of `bytes` (the blocks it takes): room is made under the
   * cache's size limit, `place` renames it, and it is counted (CacheEviction.admit). Absent: renamed, uncounted.
   */
  admit?: (bytes: number, place: () => Promise<void>) => Promise<void>;
}

/** A huge zlib chunk being (or having been) inflated into a file; readers wait for the bytes they need. */
class SpilledChunk {
  progress = 0;
  error: Error | undefined;
  done = false;
  /** The inflate's end (named, or failed and removed): see close. */
  settled: Promise<void> = Promise.resolve();
  private waiters: Array<() => void> = [];

  constructor(
    readonly chunk: RawChunk,
    readonly handle: FileHandle,
  ) {}

  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  async waitFor(end: number): Promise<void> {
    while (!this.error && this.progress < end) await new Promise<void>((r) => this.waiters.push(r));
    if (this.error && this.progress < end) throw this.error;
  }
}

/**
 * The template's raw stream (spec §2.5): the concatenation of all decompressed DATA/BZIP parts, read at
 * any offset. Small chunks are decompressed whole (zlib in libuv's pool, bzip2 on a worker thread) and
 * kept in a byte-bounded LRU; huge ones (jigdo-file writes up to ~270 MB for zero runs) are inflated
 * once, as a stream, into a sparse spill file, so a random read never costs more than one pass.
 */
export class TemplateData {
  private readonly cache: LRUCache<number, Buffer>;
  private readonly inflight = new Map<number, Promise<Buffer>>();
  private readonly spills = new Map<number, SpilledChunk>();
  /** Spills being started (a finished file looked for, or a temporary one made): one per chunk however many readers come. */
  private readonly spillStarts = new Map<number, Promise<SpilledChunk>>();
  /** Temporary spill files of killed processes removed (once per process). */
  private cleaned: Promise<void> | undefined;
  private readonly rawStarts: Float64Array;
  readonly stats = { chunkLoads: 0, cacheHits: 0, bytesInflated: 0 };

  constructor(
    private readonly src: ByteSource,
    private readonly info: TemplateInfo,
    private readonly opts: TemplateDataOptions,
  ) {
    this.cache = new LRUCache<number, Buffer>({ maxSize: Math.max(1, opts.memoryLimit), sizeCalculation: (b) => Math.max(1, b.length) });
    this.rawStarts = Float64Array.from(info.chunks, (c) => c.rawStart);
  }

  get rawLength(): number {
    return this.info.desc.rawLength;
  }

  private chunkAt(rawOffset: number): number {
    return lastAtOrBefore(this.rawStarts, rawOffset);
  }

  private corrupt(chunk: RawChunk, problem: string): JigdoError {
    return new JigdoError(this.info.name, `raw-data part ${chunk.index + 1}: ${problem}`, chunk.payloadOffset - 16);
  }

  /**
   * Reads `length` bytes of the raw stream from `rawOffset` into `target` at `targetOffset`. Once `signal`
   * aborted, no new write into `target` starts (see settleAll).
   */
  async readInto(rawOffset: number, length: number, target: Buffer, targetOffset: number, signal?: AbortSignal): Promise<void> {
    if (rawOffset < 0 || rawOffset + length > this.rawLength) {
      throw new JigdoError(this.info.name, `raw data ${rawOffset}+${length} lies outside the ${this.rawLength} raw bytes`);
    }
    await settleEach(this.chunkJobs(rawOffset, length, target, targetOffset), CHUNKS_AT_ONCE, signal);
  }

  /** The jobs of readInto: one per chunk it spans. */
  private *chunkJobs(rawOffset: number, length: number, target: Buffer, targetOffset: number): Generator<(signal: AbortSignal) => Promise<void>> {
    let pos = rawOffset;
    let out = targetOffset;
    const end = rawOffset + length;
    for (let i = this.chunkAt(rawOffset); pos < end; i++) {
      const chunk = this.info.chunks[i]!;
      const from = pos - chunk.rawStart;
      const n = Math.min(end, chunk.rawStart + chunk.uncompressedLength) - pos;
      if (n <= 0) continue; // empty chunk (uncLen 0)
      const at = out;
      yield (signal) => this.readChunk(chunk, from, n, target, at, signal);
      pos += n;
      out += n;
    }
  }

  private async readChunk(chunk: RawChunk, from: number, n: number, target: Buffer, at: number, signal: AbortSignal): Promise<void> {
    // Also what the memory LRU cannot keep (a small --memory): never inflated again for each read.
    if (chunk.compression === 'zlib' && chunk.uncompressedLength > Math.min(SPILL_THRESHOLD, this.opts.memoryLimit)) {
      const spill = await unlessAborted(this.spill(chunk), signal);
      await unlessAborted(spill.waitFor(from + n), signal);
      let done = 0;
      while (done < n) {
        throwIfAborted(signal);
        const { bytesRead } = await spill.handle.read(target, at + done, n - done, from + done);
        if (bytesRead === 0) throw this.corrupt(chunk, 'spill file ended early');
        done += bytesRead;
      }
      return;
    }
    const data = await unlessAborted(this.whole(chunk), signal);
    throwIfAborted(signal);
    data.copy(target, at, from, from + n);
  }

  /** A small chunk decompressed whole, from the LRU or loaded once however many readers wait. */
  private whole(chunk: RawChunk): Promise<Buffer> {
    const cached = this.cache.get(chunk.index);
    if (cached) {
      this.stats.cacheHits++;
      return Promise.resolve(cached);
    }
    return oncePerKey(this.inflight, chunk.index, () => this.load(chunk));
  }

  private async load(chunk: RawChunk): Promise<Buffer> {
    this.stats.chunkLoads++;
    if (chunk.compression === 'bzip2' && chunk.uncompressedLength > MAX_BZIP2_CHUNK) {
      throw this.corrupt(chunk, `BZIP part claims ${chunk.uncompressedLength} bytes, more than any producer writes`);
    }
    const payload = await this.src.read(chunk.payloadOffset, chunk.payloadLength);
    let data: Buffer;
    try {
      data =
        chunk.compression === 'zlib'
          ? await inflateChunk(payload, { maxOutputLength: chunk.uncompressedLength + 1, chunkSize: outputBufferSize(chunk) })
          : await this.opts.pool.bunzip2(payload, chunk.uncompressedLength);
    } catch (err) {
      // (More bytes than the header says stops the decompression: said so, not as zlib's buffer limit or BZ_OUTBUFF_FULL.)
      throw this.corrupt(chunk, inflatesPast(err) ? tooLong(chunk) : `corrupt ${chunk.compression} data (${errorMessage(err)})`);
    }
    if (data.length !== chunk.uncompressedLength) {
      throw this.corrupt(chunk, `decompressed to ${data.length} bytes instead of ${chunk.uncompressedLength}`);
    }
    this.stats.bytesInflated += data.length;
    this.cache.set(chunk.index, data);
    return data;
  }

  /**
   * Starts (once) streaming a huge chunk into its spill file; finished spills are reused across runs. Readers that
   * come while it starts wait for the same start: each inflating the chunk into a file of its own cost a whole pass
   * per reader and left all but one file open.
   */
  private spill(chunk: RawChunk): Promise<SpilledChunk> {
    const known = this.spills.get(chunk.index);
    if (known) return Promise.resolve(known);
    return oncePerKey(this.spillStarts, chunk.index, () => this.startSpill(chunk));
  }

  private async startSpill(chunk: RawChunk): Promise<SpilledChunk> {
    await makeDirs(this.opts.spillDir);
    await (this.cleaned ??= removeDeadSpills(this.opts.spillDir));
    // Named after the compressed bytes it comes from: the folder is per image checksum and template size, which a
    // hostile template can copy, and a spill file is taken by its size alone; one template's bytes were served for
    // another's in a shared cache.
    const final = path.join(this.opts.spillDir, spillName(chunk.index, chunk.uncompressedLength, await this.payloadDigest(chunk)));
    // Only a regular file (a FIFO there hung the read), with the whole-second mtime it was named with: one written to
    // since (a disk tool, `dd conv=notrunc`) was served as the image's bytes, and make-image then blamed the template.
    const existing = await openRegular(final, constants.O_RDONLY).catch(() => undefined);
    const found = await existing?.stat();
    if (existing && found && (found.size !== chunk.uncompressedLength || writtenSinceCommit(found.mtimeMs))) {
      await rm(final, { force: true }).catch(() => undefined); // inflated again below
    } else if (existing && found) {
      // Used now: least recently used spills are evicted first, like parts (cache-eviction.ts); the mtime stays.
      await utimes(final, new Date(), found.mtime).catch(() => undefined);
      const ready = new SpilledChunk(chunk, existing);
      ready.progress = chunk.uncompressedLength;
      ready.done = true;
      this.spills.set(chunk.index, ready);
      return ready;
    }
    await existing?.close();
    const tmp = spillTempName(final); // this process's alone (makeListed)
    const [handle, unlist] = await makeListed(tmp, () => open(tmp, 'w+', 0o600)); // private, like the whole cache (see makeDirs)
    const spill = new SpilledChunk(chunk, handle);
    this.spills.set(chunk.index, spill);
    spill.settled = this.inflateToSpill(spill, tmp, final).finally(unlist); // (renamed or removed by then; if the process ends first, it goes)
    return spill;
  }

  /** SHA-256 of a chunk's compressed bytes (hex, 32 digits), read in pieces: a few MiB for a chunk worth a spill. */
  private async payloadDigest(chunk: RawChunk): Promise<string> {
    const hash = createHash('sha256');
    for (let at = 0; at < chunk.payloadLength; at += SPILL_BLOCK) {
      hash.update(await this.src.read(chunk.payloadOffset + at, Math.min(SPILL_BLOCK, chunk.payloadLength - at)));
    }
    return hash.digest('hex').slice(0, 32);
  }

  private async inflateToSpill(spill: SpilledChunk, tmp: string, final: string): Promise<void> {
    const { chunk, handle } = spill;
    const zero = Buffer.alloc(SPILL_BLOCK);
    try {
      // Our disk failing (full...) is not corrupt data: say which file could not be written.
      const cannotWrite = (err: unknown): never => {
        throw new JigdoError(tmp, `cannot write the inflated template data: ${errorMessage(err)}`);
      };
      await handle.truncate(chunk.uncompressedLength).catch(cannotWrite); // sparse: zero runs cost no disk
      const inflater = createInflate({ chunkSize: SPILL_BLOCK });
      const feed = (async () => {
        const step = 1024 * 1024;
        for (let at = 0; at < chunk.payloadLength; at += step) {
          const piece = await this.src.read(chunk.payloadOffset + at, Math.min(step, chunk.payloadLength - at));
          if (!inflater.write(piece)) await new Promise((r) => inflater.once('drain', r));
        }
        inflater.end();
      })();
      feed.catch((err: unknown) => inflater.destroy(err as Error));
      for await (const block of inflater as AsyncIterable<Buffer>) {
        if (spill.progress + block.length > chunk.uncompressedLength) throw this.corrupt(chunk, tooLong(chunk));
        if (!(block.length === zero.length && block.equals(zero))) await handle.write(block, 0, block.length, spill.progress).catch(cannotWrite);
        spill.progress += block.length;
        this.stats.bytesInflated += block.length;
        spill.notify();
      }
      if (spill.progress !== chunk.uncompressedLength) {
        throw new Error(`decompressed to ${spill.progress} bytes instead of ${chunk.uncompressedLength}`);
      }
      // On the disk before it has its final name: a spill file is taken by its size alone, also after a crash, and an
      // unsynced one could come back with the right size and holes where its bytes were.
      // Its blocks are counted against --cache-size: a template may expand a few MB of zlib into GBs that are not zeros
      // (a run of 0xFF), and spills of every template ever read were kept outside the limit. (stat by name: the session
      // may close the handle once the last byte is read.)
      const [{ blocks }] = await Promise.all([stat(tmp), handle.datasync().catch(cannotWrite)]);
      await utimes(tmp, new Date(), commitStamp()).catch(cannotWrite); // (see startSpill)
      const place = (): Promise<void> => rename(tmp, final).catch(() => undefined); // another process may have won the race: same bytes
      await (this.opts.admit ? this.opts.admit(blocks * 512, place).catch(place) : place());
      spill.done = true;
    } catch (err) {
      spill.error = err instanceof JigdoError ? err : this.corrupt(chunk, `corrupt zlib data (${errorMessage(err)})`);
      if (this.spills.get(chunk.index) === spill) this.spills.delete(chunk.index); // the next read tries again (a full disk may have been the cause)
      spill.notify();
      await handle.close().catch(() => undefined);
      await rm(tmp, { force: true });
    }
  }

  async close(): Promise<void> {
    // A spill whose last byte was read is left to be named, so the next session takes it (an unmount right after a
    // read at a chunk's end left it unnamed, and it went with the process).
    const inflated = [...this.spills.values()].filter((s) => !s.done && s.progress === s.chunk.uncompressedLength);
    await Promise.all(inflated.map((s) => s.settled));
    for (const s of this.spills.values()) await s.handle.close().catch(() => undefined);
    this.spills.clear();
    this.cache.clear();
  }
}

/** Removes the spill files nobody will finish or take (deadSpillFile): those of processes that no longer run. */
async function removeDeadSpills(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    // A file we cannot remove is only disk used: never a reason to fail the reads that come next.
    if (deadSpillFile(name)) await rm(path.join(dir, name), { force: true }).catch(() => undefined);
  }
}
