/**
 * Fuzz target for the disc-filesystem reader (src/discfs/): listDisc over the input as a disc image. Clean
 * failures are DiscFormatError; anything else thrown (or a hang, or an extent outside the image) is a bug.
 *
 * The input is a sparse image, so seeds stay a few KB although a disc's first descriptor sits at byte 32768
 * and a UDF anchor at block 256: a sequence of records, each a 4-byte little-endian index of a 512-byte block
 * and that block's 512 bytes (a short last record is zero-padded). Blocks not given are zeros; the image ends
 * after the highest block given. Seeds in test/fuzz/corpus/discfs/ (made by `node --import tsx
 * test/fuzz/targets/discfs.ts IMAGE OUT` from xorriso, genisoimage and mkudffs images) keep only the non-zero
 * blocks of real images.
 */
import { writeFile, readFile } from 'node:fs/promises';
import { DiscFormatError, listDisc } from '../../../src/discfs/index.js';

const BLOCK = 512;
const RECORD = 4 + BLOCK;
/** Highest block index honoured (an image of at most 64 MiB: the input cannot make the harness allocate more). */
const MAX_BLOCK = (64 << 20) / BLOCK;

/** The sparse image: block index → bytes, and its size. */
export function expand(input: Buffer): { blocks: Map<number, Buffer>; size: number } {
  const blocks = new Map<number, Buffer>();
  let size = 0;
  for (let at = 0; at + 4 <= input.length; at += RECORD) {
    const index = input.readUInt32LE(at) % MAX_BLOCK;
    const data = Buffer.alloc(BLOCK);
    input.copy(data, 0, at + 4, Math.min(input.length, at + RECORD));
    blocks.set(index, data);
    size = Math.max(size, (index + 1) * BLOCK);
  }
  return { blocks, size };
}

/** The opposite of expand: the non-zero 512-byte blocks of an image. */
export function compact(image: Buffer): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i * BLOCK < image.length; i++) {
    const data = Buffer.alloc(BLOCK);
    image.copy(data, 0, i * BLOCK, (i + 1) * BLOCK);
    if (!data.some((b) => b !== 0) && (i + 1) * BLOCK < image.length) continue;
    const index = Buffer.alloc(4);
    index.writeUInt32LE(i);
    out.push(index, data);
  }
  return Buffer.concat(out);
}

export default {
  name: 'discfs',
  async run(input: Buffer): Promise<void> {
    const { blocks, size } = expand(input);
    const read = async (offset: number, length: number): Promise<Buffer> => {
      const end = Math.min(size, offset + length);
      const out = Buffer.alloc(Math.max(0, end - offset));
      for (let at = offset; at < end; ) {
        const i = Math.floor(at / BLOCK);
        const within = at - i * BLOCK;
        const n = Math.min(BLOCK - within, end - at);
        blocks.get(i)?.copy(out, at - offset, within, within + n);
        at += n;
      }
      return out;
    };
    const listing = await listDisc(read, size, { maxEntries: 10_000 });
    for (const f of listing.files) {
      for (const e of f.extents) if (e.offset < 0 || e.offset + e.length > size) throw new Error(`${f.path}: extent outside the image`);
    }
  },
  isCleanError(e: unknown): boolean {
    return e instanceof DiscFormatError;
  },
};

// Seed maker: node --import tsx test/fuzz/targets/discfs.ts IMAGE OUT
if (process.argv[1]?.endsWith('discfs.ts') && process.argv.length === 4) {
  await writeFile(process.argv[3]!, compact(await readFile(process.argv[2]!)));
}
