import type { ImageReader } from '../image/reader.js';

/**
 * The image in order, as blocks read `depth` at a time ahead of the consumer: reads of parts and raw
 * data overlap with whatever the consumer does (writing, hashing) while memory stays depth × block.
 */
export async function* imageBlocks(reader: ImageReader, blockSize = 8 << 20, depth = 4): AsyncGenerator<{ offset: number; data: Buffer }> {
  const size = reader.size;
  const queue: Array<{ offset: number; data: Promise<Buffer> }> = [];
  let next = 0;
  const fill = (): void => {
    while (queue.length < depth && next < size) {
      const offset = next;
      const p = reader.readDirect(offset, Math.min(blockSize, size - offset));
      p.catch(() => undefined); // surfaced when its turn comes
      queue.push({ offset, data: p });
      next += blockSize;
    }
  };
  fill();
  while (queue.length > 0) {
    const head = queue.shift()!;
    const data = await head.data;
    fill();
    yield { offset: head.offset, data };
  }
}

/** True when `buf` owns its whole ArrayBuffer, so it can be transferred to a worker without a copy. */
export function ownsMemory(buf: Buffer): boolean {
  return buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength;
}
