import { usableCores } from '../../util/cpu-count.js';
import type { Worker } from 'node:worker_threads';
import type { ChecksumKind } from '../../format/checksum.js';
import { onAbort } from '../../util/on-abort.js';
import { startWorker } from '../../util/start-worker.js';
import { FetchError } from '../fetch-error.js';
import type { RangeRequest } from '../http-answer.js';
import type { FetchTask, FromFetchWorker } from './protocol.js';

export interface ThreadResult {
  end: number;
  whole: boolean;
  total?: number;
  ttfbMs: number;
  digest?: Buffer;
}

export interface ThreadFetchOptions {
  signal?: AbortSignal;
  onHeaders?: (info: { whole: boolean; total?: number }) => void;
  hash?: ChecksumKind;
  timeoutMs: number;
}

/**
 * Fetch threads for a process: one per core, at most two (a thread receives, hashes and writes ~1 GB/s; the
 * main thread and the hashing pool need the rest). `JIGDOFS_HTTP_THREADS=N` sets it; 0 runs every request
 * through undici on the main thread (the path before them, kept for comparison).
 */
export function fetchThreadCount(env = process.env): number {
  const set = env.JIGDOFS_HTTP_THREADS;
  if (set !== undefined && /^\d+$/.test(set)) return Math.min(Number(set), 16);
  return Math.min(2, usableCores());
}

/** The answer needs the full client (a redirect, a chunked body): nothing was written; ask undici. */
export class NeedsFullClient extends Error {}

interface InFlight {
  url: string;
  thread: FetchThread;
  onData: (pos: number) => void;
  onHeaders?: (info: { whole: boolean; total?: number }) => void;
  resolve: (r: ThreadResult) => void;
  reject: (e: Error) => void;
  /** Position last reported to onData. */
  pos: number;
  /** What a callback threw: the request fails with it. */
  callbackError?: Error;
}

/** One fetch thread and the number of its requests in flight (it is ref'd exactly while that is not 0). */
interface FetchThread {
  worker: Worker;
  busy: number;
}

/**
 * The main thread's side of the fetch threads (raw-http/fetch-worker.ts): plain-HTTP ranged GETs into files,
 * spread over a few threads, so that receiving, hashing and writing the bytes never runs on the main thread.
 * HttpClient.fetchRange uses it where it can (`takes`) and falls back to undici on NeedsFullClient.
 *
 * Owns the threads (started on demand, at most `size`), `inFlight` (id → the request's callbacks) and the
 * origins that needed the full client once (asked through undici from then on).
 */
export class FetchThreads {
  private readonly threads: FetchThread[] = [];
  private readonly inFlight = new Map<number, InFlight>();
  private readonly fullClientOrigins = new Set<string>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly size: number) {}

  /** Whether a request for `url` can go to a thread: plain http, no proxy, an origin that never needed undici. */
  takes(url: string): boolean {
    if (this.size === 0 || this.closed) return false;
    if (process.env.HTTP_PROXY || process.env.http_proxy) return false; // proxies and NO_PROXY: undici's agent
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return false;
    }
    return u.protocol === 'http:' && !u.username && !u.password && !this.fullClientOrigins.has(u.origin);
  }

  /**
   * Runs the request on a thread, writing into `fd`. The promise settles only once the thread is done with `fd`:
   * the caller must not close it before (a reused descriptor number would take another file's bytes).
   */
  fetchRange(url: string, range: RangeRequest, fd: number, onData: (pos: number) => void, opts: ThreadFetchOptions): Promise<ThreadResult> {
    if (opts.signal?.aborted) return Promise.reject(new FetchError(url, 'aborted', 'aborted'));
    const id = this.nextId++;
    const thread = this.pick();
    const task: FetchTask = { op: 'fetch', id, url, ...range, fd, hash: opts.hash, timeoutMs: opts.timeoutMs };
    return new Promise<ThreadResult>((resolve, reject) => {
      const unhook = onAbort(opts.signal, () => thread.worker.postMessage({ op: 'abort', id }));
      const done = <T>(f: (v: T) => void) => (v: T): void => {
        unhook();
        if (--thread.busy === 0) thread.worker.unref();
        f(v);
      };
      this.inFlight.set(id, { url, thread, onData, onHeaders: opts.onHeaders, resolve: done(resolve), reject: done(reject), pos: range.start });
      if (thread.busy++ === 0) thread.worker.ref();
      thread.worker.postMessage(task);
    });
  }

  private pick(): FetchThread {
    if (this.threads.length < this.size) {
      const worker = startWorker(import.meta.url, './fetch-worker');
      const thread: FetchThread = { worker, busy: 0 };
      worker.unref();
      worker.on('message', (m: FromFetchWorker) => this.message(m));
      // Its requests fail at 'exit', not at 'error': only then has the thread surely stopped writing into their files.
      let error: Error | undefined;
      worker.on('error', (err) => (error ??= err));
      worker.on('exit', (code) => this.died(thread, error ?? new Error(`fetch thread exited (code ${code})`)));
      this.threads.push(thread);
      return thread;
    }
    return this.threads.reduce((a, b) => (b.busy < a.busy ? b : a));
  }

  private message(m: FromFetchWorker): void {
    const r = this.inFlight.get(m.id);
    if (!r) return;
    try {
      if (m.op === 'headers') return r.onHeaders?.({ whole: m.whole, total: m.total });
      if (m.op === 'progress') return this.advance(r, m.pos);
      this.advance(r, m.op === 'done' ? m.end : m.pos); // what was written before a failure stays: a resume starts after it
    } catch (err) {
      // A caller's callback threw (in the undici path that failed the request, inside its write): so here. The
      // request settles once its thread has stopped writing.
      r.callbackError ??= err instanceof Error ? err : new Error(String(err));
      if (m.op === 'headers' || m.op === 'progress') return r.thread.worker.postMessage({ op: 'abort', id: m.id });
    }
    this.inFlight.delete(m.id);
    if (r.callbackError) return r.reject(r.callbackError);
    if (m.op === 'done') {
      const digest = m.digest ? Buffer.from(m.digest.buffer, m.digest.byteOffset, m.digest.byteLength) : undefined;
      return r.resolve({ end: m.end, whole: m.whole, total: m.total, ttfbMs: m.ttfbMs, digest });
    }
    if (m.kind === 'fallback') {
      this.fullClientOrigins.add(new URL(r.url).origin);
      return r.reject(new NeedsFullClient(m.message));
    }
    r.reject(new FetchError(r.url, m.kind, m.message, m.status, m.retryAfterMs));
  }

  private advance(r: InFlight, pos: number): void {
    if (pos > r.pos) r.onData((r.pos = pos));
  }

  private died(thread: FetchThread, err: Error): void {
    const i = this.threads.indexOf(thread);
    if (i < 0) return;
    this.threads.splice(i, 1);
    for (const [id, r] of this.inFlight) {
      if (r.thread !== thread) continue;
      this.inFlight.delete(id);
      r.reject(new FetchError(r.url, this.closed ? 'aborted' : 'reset', this.closed ? 'aborted: shutting down' : `fetch thread failed: ${err.message}`));
    }
  }

  /** Ends every thread; requests still running fail as 'aborted'. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }
}
