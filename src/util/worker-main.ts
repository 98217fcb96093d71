/**
 * The worker thread of the pool: CPU-heavy work that must not stall the main thread (FUSE requests):
 * bzip2 decompression, hashing files and streams, dropping files from the page cache (a system call of ~0.1 ms per
 * MiB dropped). Every request carries an id; the reply echoes it.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type Bzip2 from '@foxglove/wasm-bz2';
import { fsPath, shown } from '../format/byte-string.js';
import { RollingRsyncSum64 } from '../format/rsync-rolling.js';
import { dropFromPageCache } from './page-cache.js';
import { readRangesSync } from './range-read.js';
import type { RsyncMatches, WorkerReply, WorkerRequest } from './worker-protocol.js';

/** Bytes read per step when hashing a file: larger steps do not hash faster (MD5 runs at memory speed from 256 KiB up). */
const HASH_BLOCK = 1024 * 1024;
/**
 * One read buffer per worker, reused by every hash of a file: a fresh 4 MiB buffer per file was garbage that V8 freed late
 * (external memory), and with 1,550 parts hashed during a cold `cp` it lifted the daemon's peak RSS from ~195 to 245 MB.
 */
let hashBuf: Buffer | undefined;
/** Loaded at the first bzip2 request: most templates are gzip, and every worker's start-up waited ~11 ms for it. */
let bzip2: Promise<Bzip2> | undefined;
const streams = new Map<number, Hash>();

/**
 * The hash of `ranges` of a file, in order: one range for a part at an offset (a length of Infinity runs to the end
 * of the file), several for a file inside a disc image (its extents). A range past the end of the file is an error.
 */
function hashRanges(path: string, kind: string, ranges: Array<{ offset: number; length: number }>): Buffer {
  const hash = createHash(kind);
  const fd = openSync(fsPath(path), 'r'); // a part path may hold non-UTF-8 bytes (byte-string.ts)
  try {
    const buf = (hashBuf ??= Buffer.allocUnsafeSlow(HASH_BLOCK)); // synchronous: one user at a time
    readRangesSync(fd, ranges, buf, (chunk) => hash.update(chunk), () => new Error(`${shown(path)}: file is shorter than expected`));
  } finally {
    closeSync(fd);
  }
  return hash.digest();
}

/**
 * The places of `path` (every `step` bytes) where the RsyncSum64 of the next `window` bytes is one of `sums`
 * (RollingRsyncSum64 keys): `--scan-deep`. Reads the file once, 4 MiB at a time; at most `maxMatches`.
 */
function rsyncScan(path: string, sums: string[], window: number, step: number, maxMatches: number): RsyncMatches {
  const wanted = new Map(sums.map((s, i) => [s, i]));
  const out: RsyncMatches = { offsets: [], which: [] };
  const sum = new RollingRsyncSum64(window);
  const buf = Buffer.allocUnsafe(HASH_BLOCK + window);
  const fd = openSync(fsPath(path), 'r');
  try {
    for (let base = 0; out.offsets.length < maxMatches; base += HASH_BLOCK) {
      const n = readSync(fd, buf, 0, buf.length, base);
      for (let at = 0; at < HASH_BLOCK && at + window <= n; at += step) {
        sum.reset(buf, at);
        const i = wanted.get(sum.key());
        if (i === undefined) continue;
        out.offsets.push(base + at);
        out.which.push(i);
      }
      if (n < buf.length) break;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

async function handle(req: WorkerRequest): Promise<{ result: unknown; transfer?: ArrayBuffer[] }> {
  switch (req.op) {
    case 'bunzip2': {
      bzip2 ??= import('@foxglove/wasm-bz2').then((m) => m.default.init());
      const out = (await bzip2).decompress(req.payload, req.size, { small: false });
      if (out.length !== req.size) throw new Error(`bzip2 data decompressed to ${out.length} bytes, expected ${req.size}`);
      return { result: out, transfer: [out.buffer as ArrayBuffer] };
    }
    case 'hashFile':
      return { result: hashRanges(req.path, req.kind, req.ranges ?? [{ offset: req.offset ?? 0, length: req.length ?? Number.POSITIVE_INFINITY }]) };
    case 'rsyncScan':
      return { result: rsyncScan(req.path, req.sums, req.window, req.step, req.maxMatches) };
    case 'hashStart':
      streams.set(req.stream, createHash(req.kind));
      return { result: null };
    case 'hashUpdate':
      streams.get(req.stream)!.update(req.data);
      return { result: null };
    case 'dropPages':
      for (const path of req.paths) dropFromPageCache(path, req.range, req.device);
      return { result: null };
    case 'hashEnd': {
      const digest = streams.get(req.stream)!.digest();
      streams.delete(req.stream);
      return { result: digest };
    }
  }
}

parentPort!.on('message', (req: WorkerRequest) => {
  handle(req).then(
    ({ result, transfer }) => parentPort!.postMessage({ id: req.id, ok: true, result } satisfies WorkerReply, transfer ?? []),
    (err: unknown) =>
      parentPort!.postMessage({ id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies WorkerReply),
  );
});
