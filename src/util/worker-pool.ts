import { usableCores } from './cpu-count.js';
import type { Worker } from 'node:worker_threads';
import { startWorker } from './start-worker.js';
import type { ChecksumKind } from '../format/checksum.js';
import type { FileRange, RsyncMatches, WorkerReply, WorkerTask } from './worker-protocol.js';

/**
 * A small pool of worker threads for bzip2 and hashing. Workers are unref'd while idle so that they
 * never keep a finished command alive.
 */

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/**
 * One worker thread and its requests in flight. Owns `pending` (request id → promise callbacks); the
 * thread is ref'd exactly while `pending` is not empty. When the thread dies every pending request is
 * rejected and the pool forgets the worker (onExit).
 */
class PoolWorker {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  /** Called once `pending` empties (close waits for that). */
  private onIdle: Array<() => void> = [];

  constructor(onExit: (w: PoolWorker) => void) {
    this.worker = startWorker(import.meta.url, './worker-main');
    this.worker.unref();
    this.worker.on('message', (reply: WorkerReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) this.idle();
      if (reply.ok) p.resolve(reply.result);
      else p.reject(new Error(reply.error));
    });
    const fail = (err: Error): void => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      this.idle();
      onExit(this);
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`worker thread exited (code ${code})`)));
  }

  private idle(): void {
    this.worker.unref();
    const waiting = this.onIdle;
    this.onIdle = [];
    for (const w of waiting) w();
  }

  /** Resolves once no request is in flight on this worker. */
  drained(): Promise<void> {
    return this.pending.size === 0 ? Promise.resolve() : new Promise((r) => this.onIdle.push(r));
  }

  run<T>(id: number, task: WorkerTask, transfer: ArrayBuffer[]): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.ref();
      this.worker.postMessage({ ...task, id }, transfer);
    });
  }
}

/**
 * Made once per command by the composition root (cli/options.ts sourceOptions, or openImage for callers
 * that give none) and passed to what needs it: TemplateData (bzip2), LocalSources and the template check
 * (hashing), the disk cache (Network's hashFile), make-image and verify (streamHash). Owns `workers`
 * (started on demand, at most `size`) and the id counters; no locks: requests are only queued on a worker.
 */
export class WorkerPool {
  private workers: PoolWorker[] = [];
  private nextId = 1;
  private nextStream = 1;
  private closed = false;

  constructor(private readonly size = Math.max(1, Math.min(4, usableCores()))) {}

  /** An idle worker (one started by warm() first), else a new one while under `size`, else the least busy. */
  private pick(): PoolWorker {
    const idle = this.workers.find((w) => w.pending.size === 0);
    if (idle) return idle;
    if (this.workers.length < this.size) return this.start();
    return this.workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  private start(): PoolWorker {
    const w = new PoolWorker((dead) => (this.workers = this.workers.filter((x) => x !== dead)));
    this.workers.push(w);
    return w;
  }

  /**
   * Starts a worker now if none runs: a thread takes ~0.1-0.2 s to start (Node's bootstrap), which a command that
   * will hash soon (make-image: the image stream) spends while it still parses the .jigdo and the template.
   */
  warm(): void {
    if (this.workers.length === 0) this.start();
  }

  run<T>(task: WorkerTask, transfer: ArrayBuffer[] = [], worker = this.pick()): Promise<T> {
    return worker.run<T>(this.nextId++, task, transfer);
  }

  async bunzip2(payload: Buffer, size: number): Promise<Buffer> {
    const copy = new Uint8Array(payload); // transferred to the worker: never hand over a shared pool slab
    const out = await this.run<Uint8Array>({ op: 'bunzip2', payload: copy, size }, [copy.buffer]);
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  }

  /** Hashes a whole file, `length` bytes from `offset`, or the `ranges` of it in order (a file inside a disc image). */
  async hashFile(path: string, kind: ChecksumKind, offset?: number, length?: number, ranges?: FileRange[]): Promise<Buffer> {
    const out = await this.run<Uint8Array>({ op: 'hashFile', path, kind, offset, length, ranges });
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  }

  /** `--scan-deep`: where in `path` (every `step` bytes) the next `window` bytes have one of these RsyncSum64 keys. */
  rsyncScan(path: string, sums: string[], window: number, step: number, maxMatches: number): Promise<RsyncMatches> {
    return this.run<RsyncMatches>({ op: 'rsyncScan', path, sums, window, step, maxMatches });
  }

  /**
   * Drops these files' pages from the kernel's page cache (util/page-cache.ts), all or those in `range`, on a worker:
   * freeing a 1 MiB file's pages takes ~0.1 ms of the calling thread. `device`: only files on it. Never fails: files
   * it cannot open (or on another device) are left as they are.
   */
  async dropPages(paths: string[], range?: FileRange, device?: number): Promise<void> {
    if (this.closed) return; // (a drop asked for late must not start a worker nobody ends)
    await this.run<null>({ op: 'dropPages', paths, range, device }).catch(() => undefined);
  }

  /** A hash fed in order from the main thread and computed on one worker, so hashing overlaps I/O. */
  streamHash(kind: ChecksumKind): StreamHash {
    const worker = this.pick();
    const stream = this.nextStream++;
    void this.run({ op: 'hashStart', stream, kind }, [], worker);
    return {
      update: (data: Uint8Array, transfer = false) =>
        this.run<null>({ op: 'hashUpdate', stream, data }, transfer ? [data.buffer as ArrayBuffer] : [], worker),
      digest: async () => {
        const out = await this.run<Uint8Array>({ op: 'hashEnd', stream }, [], worker);
        return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
      },
    };
  }

  /**
   * Ends the workers once the requests in flight are answered: a request a failed command left behind
   * (a hash update of an image never finished) must end as it would have, not as a rejection nobody handles.
   */
  async close(): Promise<void> {
    const all = this.workers;
    this.workers = [];
    this.closed = true;
    await Promise.all(all.map(async (w) => {
      await w.drained();
      await w.worker.terminate();
    }));
  }
}

export interface StreamHash {
  /**
   * Resolves once the worker has consumed `data`. With `transfer` the buffer moves to the worker (no
   * copy; it must own its whole ArrayBuffer and is unusable afterwards), else it is copied.
   */
  update(data: Uint8Array, transfer?: boolean): Promise<null>;
  digest(): Promise<Buffer>;
}
