import { closeSync, constants, openSync, write, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { fsPath } from '../format/byte-string.js';

const writeAt = promisify(write);

/** The largest logical block size O_DIRECT may ask buffers, offsets and lengths to be multiples of. */
const MAX_ALIGN = 4096;
/** Steps tried when looking for an aligned start inside a buffer (allocations are at least 16-byte aligned). */
const PROBE_STEP = 16;

/**
 * make-image's output written with O_DIRECT where the file system takes it: the image's bytes go from our block
 * buffers to the disk without a copy into the page cache. On this kind of VM that copy into fresh page-cache
 * pages was the largest kernel cost of make-image (copy_folio_from_iter_atomic: 1.2-3.3 s of sys per 2.1 GB,
 * varying with the host; O_DIRECT: 0.2-0.35 s, BENCHMARKS.md), and a multi-GB image nobody reads right away no
 * longer pushes the user's page cache out (as `dd oflag=direct`).
 *
 * O_DIRECT wants the buffer's address, the file offset and the length aligned to the device's logical block
 * size. JavaScript cannot see an address, so each buffer is allocated 4 KiB larger and the start that works is
 * found by trying 4 KiB direct writes just past the image's end (`probeAt`; the caller truncates the file to the
 * image's size at the end). Never inside the image: a buffer may be made after block 0 was written. Where the
 * file system refuses O_DIRECT (open or the probe fails) or a write is not aligned (the image's last, short
 * block), `write` returns false and the caller writes through its ordinary handle.
 *
 * Owns `fd`, the direct descriptor (until close; undefined: direct writes are off).
 */
export class DirectOutput {
  private constructor(
    private fd: number | undefined,
    private readonly probeAt: number,
  ) {}

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

  /** Whether direct writes are in use (for tests and the benchmark's notes). */
  get active(): boolean {
    return this.fd !== undefined;
  }

  /**
   * A buffer of `size` bytes on a SharedArrayBuffer (the hashing worker reads it without a copy), aligned for
   * direct writes when they are on. The first buffer that cannot be aligned turns direct writes off.
   */
  allocate(size: number): Buffer {
    if (this.fd === undefined) return Buffer.from(new SharedArrayBuffer(size));
    const raw = Buffer.from(new SharedArrayBuffer(size + MAX_ALIGN));
    for (let at = 0; at < MAX_ALIGN; at += PROBE_STEP) {
      try {
        writeSync(this.fd, raw, at, MAX_ALIGN, this.probeAt);
      } catch {
        continue; // EINVAL: this start is not aligned
      }
      return raw.subarray(at, at + size);
    }
    this.close();
    return raw.subarray(0, size);
  }

  /**
   * Writes `data` (a buffer from allocate, from its start) at `offset` directly and returns true; false, having
   * written nothing, when direct writes are off or the length or offset is not aligned (the caller writes it).
   * A failing direct write throws (a full disk) like any write.
   */
  async write(data: Buffer, offset: number): Promise<boolean> {
    if (this.fd === undefined || data.length % MAX_ALIGN !== 0 || offset % MAX_ALIGN !== 0) return false;
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await writeAt(this.fd, data, done, data.length - done, offset + done);
      if (bytesWritten <= 0) throw new Error(`short direct write at ${offset + done}`);
      done += bytesWritten;
    }
    return true;
  }

  close(): void {
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
