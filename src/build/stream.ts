import type { ImageReader } from '../image/reader.js';

/** A block of the image lent by `pooledImageBlocks`: call `release()` once nothing uses `data` any more. */
export interface PooledBlock {
  offset: number;
  data: Buffer;
  release(): void;
}

/**
 * Waits for the output's write and the hash of one block, gives its buffer back once neither uses it (also when one
 * failed), then resolves with both results or rejects with the write's failure, else the hash's.
 */
export async function releasedAfter<W, H>(block: PooledBlock, written: Promise<W>, hashed: Promise<H>): Promise<[W, H]> {
  const [w, h] = await Promise.allSettled([written, hashed]);
  block.release();
  if (w.status === 'rejected') throw w.reason;
  if (h.status === 'rejected') throw h.reason;
  return [w.value, h.value];
}

export interface PooledBlockOptions {
  blockSize?: number;
  /** Blocks being read ahead of the consumer. */
  depth?: number;
  /** Blocks the consumer may hold (not yet released) without slowing the read-ahead down. */
  held?: number;
  /** Makes each buffer (default: a plain SharedArrayBuffer); make-image's are aligned for O_DIRECT. */
  allocate?: (size: number) => Buffer;
}

/**
 * The image in order, as blocks read `depth` at a time ahead of the consumer (reads of parts and raw data
 * overlap with whatever the consumer does: writing, hashing), into a fixed set of `depth + held` reusable
 * buffers on SharedArrayBuffers.
 * Measured on a 2-core machine: fresh 8 MiB buffers per block cost page faults (the kernel zeroes every
 * new page) and GC work of the same order as the whole-image hash, which is the critical path of
 * make-image; shared buffers also reach the hashing worker without a copy or a transfer.
 */
export async function* pooledImageBlocks(reader: ImageReader, opts: PooledBlockOptions = {}): AsyncGenerator<PooledBlock> {
  const { blockSize = 4 << 20, depth = 4, held = 2, allocate = (n: number) => Buffer.from(new SharedArrayBuffer(n)) } = opts;
  const size = reader.size;
  const free: Buffer[] = [];
  let created = 0;
  let wake: (() => void) | undefined;
  const take = (): Buffer | undefined => {
    const buf = free.pop();
    if (buf || created >= depth + held) return buf;
    created++;
    return allocate(blockSize);
  };
  const giveBack = (buf: Buffer): void => {
    free.push(buf);
    const w = wake;
    wake = undefined;
    w?.();
  };
  const queue: Array<{ offset: number; buf: Buffer; data: Promise<Buffer> }> = [];
  let next = 0;
  const fill = (): void => {
    while (queue.length < depth && next < size) {
      const buf = take();
      if (!buf) return; // the consumer holds the others: wait for a release
      const offset = next;
      const target = buf.subarray(0, Math.min(blockSize, size - offset));
      const data = reader.readInto(offset, target).then(() => target);
      data.catch(() => undefined); // surfaced when its turn comes
      queue.push({ offset, buf, data });
      next += blockSize;
    }
  };
  fill();
  while (queue.length > 0 || next < size) {
    if (queue.length === 0) {
      await new Promise<void>((resolve) => (wake = resolve));
      fill();
      continue;
    }
    const head = queue.shift()!;
    const data = await head.data;
    reader.passedThrough(head.offset, head.offset + data.length); // blocks are read in order: all before is read too
    fill();
    let released = false;
    yield {
      offset: head.offset,
      data,
      release: () => {
        if (released) return;
        released = true;
        giveBack(head.buf);
      },
    };
  }
}
