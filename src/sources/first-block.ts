import { open } from 'node:fs/promises';
import { fsPath } from '../format/byte-string.js';
import { rsyncSum64 } from '../format/rsync.js';
import type { FileRange } from '../util/worker-protocol.js';
import { copyRuns } from './verified-copy.js';

/** What a candidate's first block says of it: see firstBlockMatches. */
export type FirstBlock = 'same' | 'differs' | 'unknown';

/**
 * Whether a candidate place's first `blockLength` bytes have `expected`, the RsyncSum64 the template's DESC
 * gives for the part's first block: one small read, no hash of the whole part. 'differs' is certain (other
 * first bytes, another part: no need to hash it); 'same' is only likely (the image checksum, or the part's
 * own, still decides). 'unknown' when there is nothing to compare (no sum in the DESC, a part shorter than a
 * block) or the place cannot be read (the hash will say why).
 */
export async function firstBlockMatches(
  at: { file: string; offset: number; length: number; ranges?: FileRange[] },
  expected: Buffer | undefined,
  blockLength: number,
): Promise<FirstBlock> {
  if (!expected || blockLength <= 0 || at.length < blockLength) return 'unknown';
  const block = Buffer.alloc(blockLength);
  const fh = await open(fsPath(at.file), 'r').catch(() => undefined);
  if (!fh) return 'unknown';
  try {
    // Where the part's first block lies in the file (copyRuns throws when the ranges are shorter than that).
    for (const run of copyRuns({ path: at.file, offset: at.offset, ranges: at.ranges }, 0, blockLength)) {
      const { bytesRead } = await fh.read(block, run.at, run.length, run.position);
      if (bytesRead !== run.length) return 'unknown';
    }
    return rsyncSum64(block).equals(expected) ? 'same' : 'differs';
  } catch {
    return 'unknown';
  } finally {
    await fh.close().catch(() => undefined);
  }
}
