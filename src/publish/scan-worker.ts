/**
 * A scan worker thread: rolls RsyncSum64 over slices of the image (scan-kernel.ts) and confirms each hit
 * by the strong checksum of the image bytes (first the candidate's head, then the whole length), so only
 * real matches travel back. Synchronous reads: this thread does nothing else.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { fsPath } from '../format/byte-string.js';
import { rsyncSum64 } from '../format/rsync.js';
import { RollingScan, type SumTable } from './scan-kernel.js';
import { CONFIRM, FILE_RECORD, HEAD_LENGTH, type FileJob, type ScanReply, type ScanRequest, type ScanSetup } from './scan-protocol.js';
import type { FileRange } from '../util/worker-protocol.js';
import { readRangesSync } from '../util/range-read.js';
import { openRegularSync } from '../util/open-regular.js';

const CHUNK = 2 * 1024 * 1024;
const HASH_BLOCK = 1024 * 1024;
/** In a run of hits on consecutive offsets (zeros, repeated patterns), only these alignments are checked. */
const RUN_ALIGN = 512;
const PROGRESS_EVERY = 16 * 1024 * 1024;

let setup: ScanSetup | undefined;
let table: SumTable | undefined;
let fd = -1;
const hashBuf = Buffer.allocUnsafe(HASH_BLOCK);
let scanBuf = Buffer.alloc(0);
let headBuf = Buffer.allocUnsafe(HEAD_LENGTH);

function send(msg: ScanReply): void {
  parentPort!.postMessage(msg);
}

function hashRange(offset: number, length: number, kinds: string[], from = fd): Buffer[] {
  return hashRanges([{ offset, length }], kinds, from);
}

/** The checksums of these byte ranges of `from`, in order (a file inside a disc image may be several). */
function hashRanges(ranges: FileRange[], kinds: string[], from = fd, each?: (chunk: Buffer) => void): Buffer[] {
  const hs = kinds.map((k) => createHash(k));
  const short = (): Error => new Error(from === fd ? 'image ended early (changed while scanned?)' : 'file is shorter than when it was listed');
  readRangesSync(from, ranges, hashBuf, (chunk) => {
    hs.forEach((h) => h.update(chunk));
    each?.(chunk);
  }, short);
  return hs.map((h) => h.digest());
}

/** Counts the zero bytes a stream of chunks begins with. */
function leadingZeros(): { count: () => number; each: (chunk: Buffer) => void } {
  let n = 0;
  let done = false;
  return {
    count: () => n,
    each: (chunk) => {
      if (done) return;
      const at = chunk.findIndex((b) => b !== 0);
      n += at < 0 ? chunk.length : at;
      done = at >= 0;
    },
  };
}

/** Fills `into` with the bytes of `ranges` (in order) from their start. */
function readRanges(from: number, ranges: FileRange[], into: Buffer): void {
  let filled = 0;
  for (const r of ranges) {
    for (let at = 0; at < r.length && filled < into.length; ) {
      const n = readSync(from, into, filled, Math.min(r.length - at, into.length - filled), r.offset + at);
      if (n === 0) throw new Error('file is shorter than when it was listed');
      filled += n;
      at += n;
    }
    if (filled === into.length) return;
  }
  if (filled < into.length) throw new Error('file is shorter than when it was listed');
}

/**
 * Confirms hits at one offset: head checksum, then whole-length checksum, each computed once per length. In a run of
 * hits of one candidate on consecutive offsets (a window of zeros, a repeated pattern), not every offset is checked:
 * the first, those aligned on RUN_ALIGN (files in an ISO, a tar or an ext4 image start there), and, once the run
 * ended, the one where a file that begins with zeros would start after other zeros (endRun): jigdo-file finds those.
 */
class Confirmer {
  private readonly lastHit: Float64Array;
  /** The last offset checked of each candidate's current run. */
  private readonly checked: Float64Array;
  private readonly sumLength: number;
  constructor(private readonly s: ScanSetup) {
    this.lastHit = new Float64Array(s.sizes.length).fill(-2);
    this.checked = new Float64Array(s.sizes.length).fill(-2);
    this.sumLength = 32; // CONFIRM
  }

  /** Hits at `at` (offsets come in order); confirmed matches go to `out` as (offset, candidate) pairs. */
  confirm(at: number, candidates: number[], limit: number, out: number[]): void {
    const heads = new Map<number, Buffer>();
    const wholes = new Map<number, Buffer>();
    for (const c of candidates) {
      const last = this.lastHit[c]!;
      const inRun = last === at - 1;
      if (!inRun) this.endRun(c, limit, out);
      this.lastHit[c] = at;
      if (inRun && at % RUN_ALIGN !== 0) continue;
      this.checked[c] = at;
      this.check(at, c, limit, out, heads, wholes);
    }
  }

  /**
   * Where `c` starts in its run, if that was not checked (the run ended: a hit elsewhere, or the slice's end). A
   * candidate that begins with K ≥ B zeros followed by other bytes can start only K bytes before the end of the
   * image's zeros, which end B bytes after the run's last window.
   */
  endRun(c: number, limit: number, out: number[]): void {
    const last = this.lastHit[c]!;
    if (last < 0) return;
    const zeros = this.s.zeros[c]!;
    const start = zeros >= this.s.blockLength && zeros < this.s.sizes[c]! ? last + this.s.blockLength - zeros : last;
    if (start >= 0 && start <= last && this.checked[c] !== start) {
      this.checked[c] = start;
      this.check(start, c, limit, out, new Map(), new Map());
    }
  }

  /** Ends every run at the end of a slice (hits past its end are the next slice's). */
  endRuns(limit: number, out: number[]): void {
    for (let c = 0; c < this.lastHit.length; c++) this.endRun(c, limit, out);
    this.lastHit.fill(-2);
  }

  private check(at: number, c: number, limit: number, out: number[], heads: Map<number, Buffer>, wholes: Map<number, Buffer>): void {
    const size = this.s.sizes[c]!;
    if (at + size > limit) return;
    const L = this.sumLength;
    const headLen = Math.min(size, HEAD_LENGTH);
    let head = heads.get(headLen);
    if (!head) heads.set(headLen, (head = hashRange(at, headLen, [CONFIRM])[0]!));
    if (!head.equals(this.s.heads.subarray(c * L, c * L + L))) return;
    let whole = size === headLen ? head : wholes.get(size);
    if (!whole) wholes.set(size, (whole = hashRange(at, size, [CONFIRM])[0]!));
    if (whole.equals(this.s.sums.subarray(c * L, c * L + L))) out.push(at, c);
  }
}

let confirmer: Confirmer | undefined;

/**
 * One read of a candidate file, into `out` (FILE_RECORD bytes): its first-block RsyncSum64, head checksum and whole
 * checksum; returns how many zero bytes it begins with. A file no longer than its first block is read once.
 */
function fileSums(job: FileJob, kind: string, blockLength: number, out: Uint8Array): number {
  const { size } = job;
  const ranges = job.ranges ?? [{ offset: 0, length: size }];
  // Only a regular file: one swapped for a FIFO after the listing hung the worker (and the run) on the open.
  const file = openRegularSync(fsPath(job.path), constants.O_RDONLY);
  try {
    const headLen = Math.min(size, HEAD_LENGTH);
    // The head, and the first block when it is longer (--min-length above 64 KiB: its RsyncSum64 was taken over the
    // head alone, so no file matched, and the template's part records were wrong for jigdo-file).
    const firstLen = Math.min(size, Math.max(HEAD_LENGTH, blockLength));
    if (headBuf.length < firstLen) headBuf = Buffer.allocUnsafe(firstLen);
    const first = headBuf.subarray(0, firstLen); // reused: a buffer per file kept ~60 MB of garbage alive
    readRanges(file, ranges, first);
    out.set(rsyncSum64(first.subarray(0, blockLength)), 0);
    out.set(createHash(CONFIRM).update(first.subarray(0, headLen)).digest(), 8);
    const kinds = kind === CONFIRM ? [CONFIRM] : [CONFIRM, kind];
    const zeros = leadingZeros();
    const [confirm, sum] = firstLen === size ? hashBytes(first, kinds, zeros.each) : hashRanges(ranges, kinds, file, zeros.each);
    out.set(confirm!, 40);
    out.set(sum ?? confirm!, 72);
    return zeros.count();
  } finally {
    closeSync(file);
  }
}

function hashBytes(bytes: Buffer, kinds: string[], each: (chunk: Buffer) => void): Buffer[] {
  each(bytes);
  return kinds.map((k) => createHash(k).update(bytes).digest());
}

/** A batch of candidate files; one that cannot be read has its reason in `errors` (the others still count). */
function filesSums(msg: Extract<ScanRequest, { op: 'files' }>): Extract<ScanReply, { op: 'files' }> {
  const n = msg.files.length;
  const reply = { op: 'files' as const, id: msg.id, sums: new Uint8Array(n * FILE_RECORD), zeros: new Float64Array(n), errors: new Array<string | null>(n).fill(null) };
  msg.files.forEach((job, i) => {
    try {
      reply.zeros[i] = fileSums(job, msg.kind, msg.blockLength, reply.sums.subarray(i * FILE_RECORD, (i + 1) * FILE_RECORD));
    } catch (err) {
      reply.errors[i] = err instanceof Error ? err.message : String(err);
    }
  });
  return reply;
}

function scanSlice(from: number, to: number, limit: number): number[] {
  const s = setup!;
  const B = s.blockLength;
  const matches: number[] = [];
  const roll = new RollingScan(B, table!);
  if (scanBuf.length < CHUNK + B) scanBuf = Buffer.allocUnsafe(CHUNK + B);
  const buf = scanBuf;
  const end = Math.min(to + B - 1, s.imageSize); // the last window starting before `to` ends here
  let pos = from;
  let carry = 0;
  let reported = 0;
  // The hits at one offset, confirmed as the scan moves on: a window of zeros that candidates begin with hits at every
  // offset of a run of zeros, and kept until the end of a read, those hits filled the worker's heap.
  const group: number[] = [];
  let groupAt = -1;
  const flush = (): void => {
    if (group.length > 0 && groupAt < to) confirmer!.confirm(groupAt, group, limit, matches);
    group.length = 0;
  };
  while (pos < end) {
    const n = readSync(fd, buf, carry, Math.min(CHUNK, end - pos), pos);
    if (n === 0) throw new Error('image ended early (changed while scanned?)');
    const len = carry + n;
    const base = pos - carry; // image offset of buf[0]
    roll.scan(buf, len, (i, c) => {
      if (base + i !== groupAt) {
        flush();
        groupAt = base + i;
      }
      group.push(c);
    });
    pos += n;
    if (len >= B) {
      buf.copyWithin(0, len - (B - 1), len);
      carry = B - 1;
    } else carry = len;
    const covered = Math.min(pos, to) - from;
    if (covered - reported >= PROGRESS_EVERY) {
      send({ op: 'progress', bytes: covered - reported });
      reported = covered;
    }
  }
  flush();
  confirmer!.endRuns(limit, matches);
  send({ op: 'progress', bytes: to - from - reported });
  return matches;
}

parentPort!.on('message', (msg: ScanRequest) => {
  try {
    if (msg.op === 'setup') {
      setup = msg.setup;
      table = setup.table;
      confirmer = new Confirmer(setup);
      if (fd >= 0) closeSync(fd);
      fd = openSync(fsPath(setup.imagePath), 'r');
    } else if (msg.op === 'scan') {
      send({ op: 'matches', id: msg.id, matches: scanSlice(msg.from, msg.to, msg.limit) });
    } else if (msg.op === 'hash') {
      send({ op: 'sum', id: msg.id, sum: hashRange(msg.offset, msg.length, [msg.kind])[0]! });
    } else {
      send(filesSums(msg));
    }
  } catch (err) {
    send({ op: 'error', id: 'id' in msg ? msg.id : -1, error: err instanceof Error ? err.message : String(err) });
  }
});
