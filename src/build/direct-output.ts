import { closeSync, constants, openSync, write, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { fsPath } from '../format/byte-string.js';

const writeAt = promisify(write);

/** The largest logical block size O_DIRECT may ask buffers, offsets and lengths to be multiples of. */
const MAX_ALIGN = 4096;

/** The part of the WebAssembly global used here (the Node 20 typings do not declare it). */
declare const WebAssembly: {
  Memory: new (descriptor: { initial: number; maximum: number; shared: true }) => { readonly buffer: SharedArrayBuffer };
};

/** Bytes per WebAssembly memory page. */
const WASM_PAGE = 65536;

/**
 * `size` bytes of shared memory starting on a page boundary: a shared WebAssembly.Memory (a SharedArrayBuffer
 * in JavaScript, so the hashing worker reads it without a copy). Undefined where the engine cannot reserve one
 * (V8 reserves address space for each, which `ulimit -v` may refuse).
 */
export function pageAlignedShared(size: number): Buffer | undefined {
  try {
    const pages = Math.max(1, Math.ceil(size / WASM_PAGE));
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    return Buffer.from(memory.buffer, 0, size);
  } catch {
    return undefined;
  }
}

/**
 * make-image's output written with O_DIRECT where the file system takes it: the image's bytes go from our block
 * buffers to the disk without a copy into the page cache. On this kind of VM that copy into fresh page-cache
 * pages was the largest kernel cost of make-image (copy_folio_from_iter_atomic: 1.2-3.3 s of sys per 2.1 GB,
 * varying with the host; O_DIRECT: 0.2-0.35 s, BENCHMARKS.md), and a multi-GB image nobody reads right away no
 * longer pushes the user's page cache out (as `dd oflag=direct`).
 *
 * O_DIRECT wants the buffer's address, the file offset and the length aligned to the device's logical block
 * size, and it is only fast with a page-aligned buffer: from a buffer 512 bytes past a page start (which the
 * kernel takes on a 512-byte-sector disk) each 4 MiB write took 74-115 ms on this kind of VM instead of 5 (1 GiB:
 * 26-29 s against 1.3-1.6 s; BENCHMARKS.md, "O_DIRECT from page-aligned buffers"). A SharedArrayBuffer's memory
 * comes from malloc, 16 bytes past a page start, and JavaScript cannot see an address; the memory of a shared
 * WebAssembly.Memory is mapped by V8's page allocator, so its first byte is page aligned (`pageAlignedShared`).
 * One 4 KiB direct write just past the image's end (`probeAt`; the caller truncates the file to the image's
 * size at the end) checks that the file system takes the buffer; never inside the image: a buffer may be made
 * after block 0 was written. Where the file system refuses O_DIRECT (open or the probe fails), no page-aligned
 * buffer can be had (a limit on address space), or a write is not aligned (the image's last, short block),
 * `write` returns false and the caller writes through its ordinary handle.
 *
 * Owns `fd`, the direct descriptor (until close; undefined: never opened, or closed), and `on` (new direct writes
 * are taken). Turning direct writes off (allocate, or stop) only clears `on`: writes still in flight (make-image has
 * a few) go on through `fd`, which only `close` closes, after them.
 */
export class DirectOutput {
  private on: boolean;

  private constructor(
    private fd: number | undefined,
    private readonly probeAt: number,
  ) {
    this.on = fd !== undefined;
  }

  /**
   * Opens `file` (already created by the caller) for direct writes of an image of `size` bytes; off when
   * `enabled` is false or the open fails.
   */
  static open(file: string, size: number, enabled = true): DirectOutput {
    const probeAt = Math.ceil(size / MAX_ALIGN) * MAX_ALIGN;
    if (!enabled || constants.O_DIRECT === undefined) return new DirectOutput(undefined, probeAt);
    try {
      return new DirectOutput(openSync(fsPath(file), constants.O_WRONLY | constants.O_DIRECT), probeAt);
    } catch {
      return new DirectOutput(undefined, probeAt);
    }
  }

  /** Whether new writes go direct (make-image's DiskWait looks before it stops them; tests). */
  get active(): boolean {
    return this.on;
  }

  /**
   * A buffer of `size` bytes on shared memory (the hashing worker reads it without a copy), page aligned for
   * direct writes when they are on. The first buffer that cannot be had page aligned, or that the file system
   * refuses, turns direct writes off.
   */
  allocate(size: number): Buffer {
    if (!this.on || this.fd === undefined) return Buffer.from(new SharedArrayBuffer(size));
    const aligned = pageAlignedShared(size);
    if (aligned) {
      try {
        // The memory is whole 64 KiB pages: its first 4 KiB exist even for a smaller buffer.
        writeSync(this.fd, Buffer.from(aligned.buffer, 0, MAX_ALIGN), 0, MAX_ALIGN, this.probeAt);
        return aligned;
      } catch {
        // EINVAL: the file system wants more than a page's alignment; write buffered
      }
    }
    this.on = false; // not close(): direct writes of earlier buffers may still be in flight
    return aligned ?? Buffer.from(new SharedArrayBuffer(size));
  }

  /**
   * Writes `data` (a buffer from allocate, from its start) at `offset` directly and returns true; false, having
   * written nothing, when direct writes are off or the length or offset is not aligned (the caller writes it).
   * A failing direct write throws (a full disk) like any write.
   */
  async write(data: Buffer, offset: number): Promise<boolean> {
    const fd = this.fd;
    if (!this.on || fd === undefined || data.length % MAX_ALIGN !== 0 || offset % MAX_ALIGN !== 0) return false;
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await writeAt(fd, data, done, data.length - done, offset + done);
      if (bytesWritten <= 0) throw new Error(`short direct write at ${offset + done}`);
      done += bytesWritten;
    }
    return true;
  }

  /**
   * No more direct writes: `write` returns false from now on and the caller writes buffered (make-image's DiskWait: the
   * disk takes direct writes slower than the image is made). Writes in flight go on through `fd` (see the class comment).
   */
  stop(): void {
    this.on = false;
  }

  /** Closes the descriptor: call it once no direct write is in flight. */
  close(): void {
    this.on = false;
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      closeSync(fd);
    } catch {
      // nothing was written through it that a close could lose: direct writes are not buffered
    }
  }
}
