import type { ChecksumKind } from '../../format/checksum.js';
import type { FailureKind } from '../fetch-error.js';

/**
 * Messages between the main thread (fetch-threads.ts) and a fetch worker (fetch-worker.ts). A request is
 * identified by `id`; the worker answers 'headers' once, 'progress' now and then, and 'done' or 'failed' last.
 */

export interface FetchTask {
  op: 'fetch';
  id: number;
  url: string;
  start: number;
  /** Exclusive; undefined: to the end of the file. */
  end?: number;
  /** The expected size of the whole file. */
  total?: number;
  /** Where the bytes go, at their positions in the file (a descriptor of this process: threads share them). */
  fd: number;
  /** Hash the body as it arrives (asked only for a request of a whole file from byte 0). */
  hash?: ChecksumKind;
  timeoutMs: number;
}

export interface AbortTask {
  op: 'abort';
  id: number;
}

export type ToFetchWorker = FetchTask | AbortTask;

/** 'fallback': the answer needs what only the full client does (a redirect, a chunked body...); nothing was written. */
export type FetchFailure = FailureKind | 'fallback';

export type FromFetchWorker =
  | { op: 'headers'; id: number; whole: boolean; total?: number }
  | { op: 'progress'; id: number; pos: number }
  | { op: 'done'; id: number; end: number; whole: boolean; total?: number; ttfbMs: number; digest?: Uint8Array }
  | { op: 'failed'; id: number; kind: FetchFailure; message: string; status?: number; retryAfterMs?: number; pos: number };
