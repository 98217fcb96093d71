import type { FileRange } from '../util/worker-protocol.js';
import { usableCores } from '../util/cpu-count.js';
import type { Worker } from 'node:worker_threads';
import type { ChecksumKind } from '../format/checksum.js';
import { startWorker } from '../util/start-worker.js';
import type { ScanReply, ScanRequest, ScanSetup } from './scan-protocol.js';

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
  | { op: 'file'; path: string; size: number; kind: ChecksumKind; blockLength: number };

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

  /** A candidate file's sums (one read of the file, on a worker). */
  async fileSums(path: string, size: number, kind: ChecksumKind, blockLength: number, ranges?: FileRange[]): Promise<{ rsync: Buffer; head: Buffer; sum: Buffer; confirm: Buffer; zeros: number }> {
    const r = await this.run({ op: 'file', path, size, kind, blockLength, ...(ranges ? { ranges } : {}) });
    if (r.op !== 'file') throw new Error('scan worker: unexpected reply');
    const b = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
    return { rsync: b(r.rsync), head: b(r.head), sum: b(r.sum), confirm: b(r.confirm), zeros: r.zeros };
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
