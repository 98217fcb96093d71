import { usableCores } from '../util/cpu-count.js';
import type { Worker } from 'node:worker_threads';
import { isB64 } from '../format/base64.js';
import type { ChecksumKind } from '../format/checksum.js';
import { startWorker } from '../util/start-worker.js';
import { FILE_RECORD, type FileJob, type ScanReply, type ScanRequest, type ScanSetup } from './scan-protocol.js';

/**
 * What the scan needs of each candidate: RsyncSum64 of its first blockLength bytes, the strong checksum
 * of its head (first 64 KiB) and of the whole file. Kept in the persistent hash index (path + identity),
 * so a second run over the same tree opens no candidate file (candidate-sums.ts). Its FILE_RECORD bytes at `at` of a
 * buffer many share (a scan worker's reply, a slab): four buffers per candidate were 38 MB of a 100,000-file tree's
 * heap, and a Buffer of its own each still 11 MB.
 */
export class CandidateSums {
  /** `sumLength`: bytes of the template's checksum kind (16 MD5, 32 SHA-256). */
  constructor(private readonly records: Buffer, private readonly at: number, readonly zeros: number, private readonly sumLength: number) {}

  /**
   * Of a hash index's entry, its sums in jigdo-Base64, or undefined if one is missing or not of its length. Decoded into
   * the record itself: a Buffer each made a second make-template over 100,000 files collect 400,000 of them.
   */
  static ofText(text: { rsync?: string; head?: string; confirm?: string; sum?: string }, zeros: number, sumLength: number): CandidateSums | undefined {
    const { rsync, head, confirm, sum } = text;
    if (!isB64(rsync, 8) || !isB64(head, 32) || !isB64(confirm, 32) || !isB64(sum, sumLength)) return undefined;
    const [records, at] = slabRecord();
    [rsync, head, confirm, sum].forEach((t, i) => records.write(t, at + [0, 8, 40, 72][i]!, 'base64url'));
    return new CandidateSums(records, at, zeros, sumLength);
  }

  private bytes(from: number, to: number): Buffer {
    return this.records.subarray(this.at + from, this.at + to);
  }

  /** RsyncSum64 of the first blockLength bytes. */
  get rsync(): Buffer {
    return this.bytes(0, 8);
  }

  /** CONFIRM checksums of the head and of the whole file (what image bytes are compared with). */
  get head(): Buffer {
    return this.bytes(8, 40);
  }

  get confirm(): Buffer {
    return this.bytes(40, 72);
  }

  /** The template's checksum kind (what DESC and [Parts] carry). */
  get sum(): Buffer {
    return this.bytes(72, 72 + this.sumLength);
  }

  /** The four checksums in jigdo-Base64 (format/base64.ts encodeB64), as the hash index keeps them. */
  encoded(): { rsync: string; head: string; confirm: string; sum: string } {
    const b64 = (from: number, to: number): string => this.records.toString('base64url', this.at + from, this.at + to);
    return { rsync: b64(0, 8), head: b64(8, 40), confirm: b64(40, 72), sum: b64(72, 72 + this.sumLength) };
  }
}

/** Records of CandidateSums.ofText are cut from slabs of this many. */
const SLAB_RECORDS = 1024;
let slab = { records: Buffer.alloc(0), used: SLAB_RECORDS };

/** A zeroed FILE_RECORD of the current slab, and where it is. */
function slabRecord(): [Buffer, number] {
  if (slab.used === SLAB_RECORDS) slab = { records: Buffer.alloc(SLAB_RECORDS * FILE_RECORD), used: 0 };
  return [slab.records, FILE_RECORD * slab.used++];
}

/**
 * The image scanner: a few worker threads (scan-worker.ts) that take slices of the image from one queue,
 * so a slow slice (many hits) does not hold the others up. Slices overlap by blockLength - 1 bytes (a
 * worker reads past its slice end to finish the last windows); matches may run past a slice, up to `limit`.
 */
const SLICE = 64 * 1024 * 1024;

function startScanWorker(): Worker {
  return startWorker(import.meta.url, './scan-worker', { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 }); // peak RSS stays flat
}

/** A stretch of the image to scan: windows starting in [from, to), matches ending by `limit`. */
export interface Stretch {
  from: number;
  to: number;
  limit: number;
}

export interface Match {
  offset: number;
  candidate: number;
}

type Job =
  | ({ op: 'scan' } & Stretch)
  | { op: 'hash'; offset: number; length: number; kind: ChecksumKind }
  | { op: 'files'; kind: ChecksumKind; blockLength: number; files: FileJob[] };

interface Waiting {
  job: Job;
  resolve: (reply: ScanReply) => void;
  reject: (err: Error) => void;
}

export class Scanner {
  private readonly workers: Worker[] = [];
  private readonly queue: Waiting[] = [];
  private readonly busy = new Map<Worker, Waiting>();
  private nextId = 1;
  private failed: Error | undefined;

  /** How many worker threads. */
  get size(): number {
    return this.workers.length;
  }

  /** Where workers report bytes scanned. */
  onProgress: (bytes: number) => void = () => undefined;

  constructor(size = Math.max(1, usableCores())) {
    for (let i = 0; i < size; i++) {
      const w = startScanWorker();
      w.on('message', (reply: ScanReply) => {
        if (reply.op === 'progress') return this.onProgress(reply.bytes);
        const waiting = this.busy.get(w);
        this.busy.delete(w);
        if (waiting) {
          if (reply.op === 'error') waiting.reject(new Error(reply.error));
          else waiting.resolve(reply);
        }
        this.pump();
      });
      w.on('error', (err) => this.fail(err));
      w.on('exit', (code) => this.fail(new Error(`scan worker exited (code ${code})`)));
      this.workers.push(w);
    }
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    for (const w of this.busy.values()) w.reject(err);
    for (const w of this.queue.splice(0)) w.reject(err);
    this.busy.clear();
  }

  private pump(): void {
    for (const w of this.workers) {
      if (this.busy.has(w)) continue;
      const next = this.queue.shift();
      if (!next) return;
      this.busy.set(w, next);
      w.postMessage({ ...next.job, id: this.nextId++ } satisfies ScanRequest);
    }
  }

  private run(job: Job): Promise<ScanReply> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.pump();
    });
  }

  /** Gives the workers the image and the candidates' sums; before `hash` or `scan`. */
  setup(setup: ScanSetup): void {
    for (const w of this.workers) w.postMessage({ op: 'setup', setup } satisfies ScanRequest);
  }

  /** Candidate files' sums (one read of each, on a worker): per file its sums, or an Error saying why it could not be read. */
  async fileSums(files: FileJob[], kind: ChecksumKind, blockLength: number): Promise<Array<CandidateSums | Error>> {
    const r = await this.run({ op: 'files', kind, blockLength, files });
    if (r.op !== 'files') throw new Error('scan worker: unexpected reply');
    const all = Buffer.from(r.sums.buffer, r.sums.byteOffset, r.sums.byteLength);
    const len = kind === 'md5' ? 16 : 32;
    return files.map((_, i) => {
      const error = r.errors[i];
      if (error !== null && error !== undefined) return new Error(error);
      return new CandidateSums(all, i * FILE_RECORD, r.zeros[i]!, len);
    });
  }

  /** Checksum of image[offset, offset + length) on a worker. */
  async hash(offset: number, length: number, kind: ChecksumKind): Promise<Buffer> {
    const r = await this.run({ op: 'hash', offset, length, kind });
    if (r.op !== 'sum') throw new Error('scan worker: unexpected reply');
    return Buffer.from(r.sum.buffer, r.sum.byteOffset, r.sum.byteLength);
  }

  /** All confirmed matches that start in the stretches, cut into slices over the workers. */
  async scan(stretches: Stretch[]): Promise<Match[]> {
    const jobs: Array<Promise<ScanReply>> = [];
    for (const s of stretches) {
      for (let from = s.from; from < s.to; from += SLICE) {
        jobs.push(this.run({ op: 'scan', from, to: Math.min(s.to, from + SLICE), limit: s.limit }));
      }
    }
    const out: Match[] = [];
    for (const reply of await Promise.all(jobs)) {
      if (reply.op !== 'matches') throw new Error('scan worker: unexpected reply');
      for (let i = 0; i < reply.matches.length; i += 2) out.push({ offset: reply.matches[i]!, candidate: reply.matches[i + 1]! });
    }
    return out;
  }

  async close(): Promise<void> {
    this.failed ??= new Error('scanner closed');
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
