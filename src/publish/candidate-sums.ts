import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { decodeB64, encodeB64 } from '../format/base64.js';
import { fsPath, shown } from '../format/byte-string.js';
import type { ChecksumKind } from '../format/checksum.js';
import { errorMessage } from '../format/errors.js';
import { rsyncSum64 } from '../format/rsync.js';
import type { HashIndex } from '../sources/hash-index.js';
import type { WorkerPool } from '../util/worker-pool.js';
import type { Candidate } from './candidates.js';
import { HEAD_LENGTH } from './scan-protocol.js';

/**
 * What the scan needs of each candidate: RsyncSum64 of its first blockLength bytes, the strong checksum
 * of its head (first 64 KiB) and of the whole file. Kept in the persistent hash index (path + identity),
 * so a second run over the same tree opens no candidate file: `reads` counts the files actually read.
 */
export interface CandidateSums {
  rsync: Buffer;
  head: Buffer;
  sum: Buffer;
}

const IN_FLIGHT = 8;

export class SumSource {
  reads = 0;

  constructor(
    private readonly index: HashIndex,
    private readonly pool: WorkerPool,
    private readonly kind: ChecksumKind,
    private readonly blockLength: number,
  ) {}

  private fields(c: Candidate): { rsync: string; head: string; sum: string } {
    return {
      rsync: `rsync64@${this.blockLength}`,
      head: `${this.kind}@0+${Math.min(c.size, HEAD_LENGTH)}`,
      sum: this.kind,
    };
  }

  private cached(c: Candidate): CandidateSums | undefined {
    const f = this.fields(c);
    const len = this.kind === 'md5' ? 16 : 32;
    const rsync = decodeB64(this.index.getValue(c.path, c.identity, f.rsync) ?? '', 8);
    const head = decodeB64(this.index.getValue(c.path, c.identity, f.head) ?? '', len);
    const sum = decodeB64(this.index.getValue(c.path, c.identity, f.sum) ?? '', len);
    return rsync && head && sum ? { rsync, head, sum } : undefined;
  }

  private async compute(c: Candidate): Promise<CandidateSums> {
    this.reads++;
    const headLen = Math.min(c.size, HEAD_LENGTH);
    const fh = await open(fsPath(c.path), 'r');
    let first: Buffer;
    try {
      first = Buffer.alloc(headLen);
      const { bytesRead } = await fh.read(first, 0, headLen, 0);
      if (bytesRead !== headLen) throw new Error('file is shorter than when it was listed');
    } finally {
      await fh.close();
    }
    const rsync = rsyncSum64(first.subarray(0, this.blockLength));
    const head = createHash(this.kind).update(first).digest();
    const sum = headLen === c.size ? head : await this.pool.hashFile(c.path, this.kind, 0, c.size);
    const f = this.fields(c);
    this.index.setValue(c.path, c.identity, f.rsync, encodeB64(rsync));
    this.index.setValue(c.path, c.identity, f.head, encodeB64(head));
    this.index.setValue(c.path, c.identity, f.sum, encodeB64(sum));
    return { rsync, head, sum };
  }

  /**
   * The sums of every candidate, in order; a file that cannot be read is warned about and left out
   * (undefined), as jigdo-file skips it.
   */
  async all(candidates: Candidate[], warn: (line: string) => void, onDone?: () => void): Promise<Array<CandidateSums | undefined>> {
    const out = new Array<CandidateSums | undefined>(candidates.length);
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < candidates.length) {
        const i = next++;
        const c = candidates[i]!;
        try {
          out[i] = this.cached(c) ?? (await this.compute(c));
        } catch (err) {
          warn(`${shown(c.path)}: ${errorMessage(err)} (not used)`);
        }
        onDone?.();
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
    return out;
  }
}
