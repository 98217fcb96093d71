import { readFileSync } from 'node:fs';
import { DROP_KEEP_BEHIND } from './drop-behind.js';
import { majorMinor } from '../util/block-device.js';

/**
 * The kernel's read-ahead window for a FUSE mount unless someone changed it (`VM_READAHEAD_PAGES`, 128 KiB; a file
 * read with fadvise(SEQUENTIAL), as `cp` and `md5sum` do, reads ahead twice that): with it, a stream's reads come at
 * most a few reads out of order, which ImageReader takes by itself (REORDERED_READS).
 */
export const DEFAULT_READ_AHEAD = 128 << 10;
/**
 * Reads at least this long may come from a larger read-ahead window. The kernel cuts a window into requests of FUSE's
 * largest read (128 KiB with libfuse 2), and at a window's edge into 64 KiB ones; nor do their edges fall on whole
 * multiples of one read from where another stream's read ended.
 */
export const WINDOW_READ = 64 << 10;
/**
 * Read-ahead windows a read may come ahead of the one it follows and still continue its stream: the kernel starts the
 * next window before the last one is read, and FUSE's threads hand the requests of both over in any order. With four,
 * a `cp` over HTTP at a 1 MiB window left 38–42 MB of the image cached, against all 2.1 GB before (BENCHMARKS.md,
 * "Streams under a raised read-ahead").
 */
const WINDOWS = 4;
/**
 * The most a read may come past a stream's end, whatever the window: well inside what the drops keep behind a stream,
 * so that a read far ahead does not move the drops past pages the reader has yet to take (root may set 16 MiB and more).
 */
const MOST_REORDER = DROP_KEEP_BEHIND / 2;
/** How often the window is read again: root may change it at any time (files opened after that read ahead with it). */
const REREAD_MS = 1000;

/** The sysfs file that holds the read-ahead (KiB) of the file system on device `dev` (glibc's dev_t encoding). */
export function readAheadFile(dev: number, root = '/sys/class/bdi'): string {
  return `${root}/${majorMinor(dev)}/read_ahead_kb`;
}

/**
 * The kernel's read-ahead window for a mount, in bytes, from `file` (readAheadFile): read at most once every
 * REREAD_MS, synchronously (sysfs answers from memory, never through a FUSE mount); 0 when it cannot be read.
 */
export function kernelReadAhead(file: string, now: () => number = Date.now): () => number {
  let bytes = 0;
  let readAt = -Infinity;
  return () => {
    const t = now();
    if (t - readAt < REREAD_MS) return bytes;
    readAt = t;
    try {
      const kib = Number(readFileSync(file, 'latin1').trim());
      bytes = Number.isSafeInteger(kib) && kib >= 0 ? kib * 1024 : 0;
    } catch {
      bytes = 0;
    }
    return bytes;
  };
}

/**
 * For ImageReader.allowReordering on a mount whose image the kernel caches: how far past a stream's end a read of
 * `length` bytes may come and still continue it (at most MOST_REORDER). Nothing beyond the reader's own rule while the
 * window is the default one, and never for short reads: a file system's scattered small reads stay lone reads.
 */
export function reorderWindow(readAhead: () => number): (length: number) => number {
  return (length) => {
    if (length < WINDOW_READ) return 0;
    const window = readAhead();
    return window > DEFAULT_READ_AHEAD ? Math.min(WINDOWS * window, MOST_REORDER) : 0;
  };
}
