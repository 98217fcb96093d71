import { createRequire } from 'node:module';
import { isAbsolute } from 'node:path';
import type { WASI as WasiClass } from 'node:wasi';
import type { FileRange } from './worker-protocol.js';

/**
 * `posix_fadvise(POSIX_FADV_DONTNEED)` for Node, which has no binding for it: through WASI, whose `fd_advise` libuv's
 * uvwasi implements with posix_fadvise on Linux. A module of four imports and no code (path_open, fd_advise,
 * fd_close, fd_filestat_get, re-exported with its memory) is enough; the WASI instance sees the whole file system ('/'
 * preopened as '/') and is no sandbox here: it only ever opens a file read-only to check and advise on it. The preopened '/' stays open for
 * the thread's life (uvwasi does not close its preopens): one descriptor per worker that ever dropped pages.
 *
 * Why: the disk cache's files of parts fetched for a job are read once, into the image, and their pages then sit in
 * the page cache until memory runs short: a second copy of the image in memory, pushing out what the user had there.
 * On VMs with free page reporting (virtio-balloon) every new page of the page cache also faults on the host: writing
 * 2 GiB in 64 MiB files took 1.6-3.1 s of sys here, 0.95 s with each file's pages dropped after its sync and so
 * reused at once (BENCHMARKS.md, "Downloads leave the page cache").
 */

/** The part of the WebAssembly global used here (Node has it; @types/node 20 does not declare it). */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
};

const I32 = 0x7f;
const I64 = 0x7e;
const WASI_MODULE = 'wasi_snapshot_preview1';
/** WASI rights asked for when opening: read, advise and fstat only, so the file is opened O_RDONLY. */
const RIGHTS = (1n << 1n) | (1n << 7n) | (1n << 21n);
const ADVICE_DONTNEED = 4;
/** Where path_open writes the new descriptor, where fd_filestat_get writes the file's stat (64 bytes), and where the path goes. */
const FD_AT = 0;
const STAT_AT = 64;
const PATH_AT = 128;
/** The preopened '/' is WASI's descriptor 3 (0-2 are stdio). */
const ROOT_FD = 3;
/** path_open's lookup flag: follow symbolic links (a cache folder reached through one). */
const FOLLOW_SYMLINKS = 1;
/**
 * path_open's fd flags: O_NONBLOCK (a FIFO put where a file was expected must not hang the worker) and O_DSYNC, which
 * does nothing to a read-only descriptor and tells a mount's daemon that this open of its image is its own
 * (fuse/open-files.ts OWN_OPEN_FLAGS: not counted among the files a detached mount serves).
 */
const FD_FLAGS = 4 | 2;

const leb128 = (n: number): number[] => {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
};
const vector = (items: number[][]): number[] => [...leb128(items.length), ...items.flat()];
const name = (s: string): number[] => vector([...Buffer.from(s)].map((b) => [b]));
const section = (id: number, body: number[]): number[] => [id, ...leb128(body.length), ...body];
const funcType = (params: number[], results: number[]): number[] => [0x60, ...vector(params.map((p) => [p])), ...vector(results.map((r) => [r]))];

/** The binary module (the WebAssembly spec's encoding): types, imports, one page of memory, exports. */
function moduleBytes(): Uint8Array {
  const types = vector([
    funcType([I32, I32, I32, I32, I32, I64, I64, I32, I32], [I32]), // path_open
    funcType([I32, I64, I64, I32], [I32]), // fd_advise
    funcType([I32], [I32]), // fd_close
    funcType([I32, I32], [I32]), // fd_filestat_get
  ]);
  const imported = (field: string, type: number): number[] => [...name(WASI_MODULE), ...name(field), 0x00, ...leb128(type)];
  const imports = vector([imported('path_open', 0), imported('fd_advise', 1), imported('fd_close', 2), imported('fd_filestat_get', 3)]);
  const memory = vector([[0x00, 0x01]]); // no maximum, one 64 KiB page
  const exported = (field: string, kind: number, index: number): number[] => [...name(field), kind, ...leb128(index)];
  const exports = vector([
    exported('memory', 0x02, 0),
    exported('path_open', 0x00, 0),
    exported('fd_advise', 0x00, 1),
    exported('fd_close', 0x00, 2),
    exported('fd_filestat_get', 0x00, 3),
  ]);
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...section(1, types), ...section(2, imports), ...section(5, memory), ...section(7, exports)]);
}

interface Calls {
  memory: { buffer: ArrayBuffer };
  path_open(dirFd: number, dirFlags: number, path: number, pathLength: number, oflags: number, rights: bigint, inheriting: bigint, fdFlags: number, fdOut: number): number;
  fd_advise(fd: number, offset: bigint, length: bigint, advice: number): number;
  fd_close(fd: number): number;
  fd_filestat_get(fd: number, statOut: number): number;
}

let calls: Calls | null | undefined;

/** The WASI calls, made once per thread; null where this Node cannot (then dropping is a no-op). */
function wasiCalls(): Calls | null {
  if (calls !== undefined) return calls;
  try {
    // node:wasi is experimental in Node 20-24 and says so on stderr when a thread first loads it: loaded here, at first
    // use, with that one warning kept off the user's terminal (nothing used here is among what may change).
    const emitWarning = process.emitWarning;
    process.emitWarning = () => undefined;
    let WASI: typeof WasiClass;
    try {
      ({ WASI } = createRequire(import.meta.url)('node:wasi') as typeof import('node:wasi'));
    } finally {
      process.emitWarning = emitWarning;
    }
    const wasi = new WASI({ version: 'preview1', preopens: { '/': '/' }, returnOnExit: true });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes()), wasi.getImportObject());
    wasi.initialize(instance);
    calls = instance.exports as unknown as Calls;
  } catch {
    calls = null;
  }
  return calls;
}

/**
 * Asks the kernel to drop the file's pages from the page cache (the clean ones; dirty ones are written back first,
 * without waiting): all of them, or those wholly inside `range`. Synchronous: for a worker thread (opening an image
 * through the daemon's own mount waits for the main thread to answer). `device`: only if the file opened is on this
 * device (st_dev): a mount's image, which another file can replace at that path once the mount is detached lazily.
 * False when the file could not be opened, was on another device, or could not be advised on.
 */
export function dropFromPageCache(file: string, range?: FileRange, device?: number): boolean {
  const c = wasiCalls();
  if (!c || !isAbsolute(file) || (range && range.length <= 0)) return false; // (length 0 would mean "to the end")
  const path = Buffer.from(file.replace(/^\/+/, ''));
  if (PATH_AT + path.length > c.memory.buffer.byteLength) return false;
  path.copy(new Uint8Array(c.memory.buffer), PATH_AT);
  if (c.path_open(ROOT_FD, FOLLOW_SYMLINKS, PATH_AT, path.length, 0, RIGHTS, 0n, FD_FLAGS, FD_AT) !== 0) return false;
  const memory = new DataView(c.memory.buffer);
  const fd = memory.getUint32(FD_AT, true);
  try {
    // st_dev is the first field of WASI's filestat.
    const onDevice = (dev: number): boolean => c.fd_filestat_get(fd, STAT_AT) === 0 && memory.getBigUint64(STAT_AT, true) === BigInt(dev);
    if (device !== undefined && !onDevice(device)) return false;
    return c.fd_advise(fd, BigInt(range?.offset ?? 0), BigInt(range?.length ?? 0), ADVICE_DONTNEED) === 0;
  } finally {
    c.fd_close(fd);
  }
}
