import { decodeB64, encodeB64 } from '../format/base64.js';
import { shown } from '../format/byte-string.js';
import type { ChecksumKind } from '../format/checksum.js';
import { errorMessage } from '../format/errors.js';
import { indexFieldName, type HashIndex } from '../sources/hash-index.js';
import { indexField } from '../sources/verified-copy.js';
import { eachLimit } from '../util/each-limit.js';
import type { Scanner } from './scanner.js';
import type { Candidate } from './candidates.js';
import { CONFIRM, HEAD_LENGTH } from './scan-protocol.js';

/**
 * What the scan needs of each candidate: RsyncSum64 of its first blockLength bytes, the strong checksum
 * of its head (first 64 KiB) and of the whole file. Kept in the persistent hash index (path + identity),
 * so a second run over the same tree opens no candidate file: `reads` counts the files actually read.
 */
export interface CandidateSums {
  rsync: Buffer;
  /** CONFIRM checksums of the head and of the whole file (what image bytes are compared with). */
  head: Buffer;
  confirm: Buffer;
  /** The template's checksum kind (what DESC and [Parts] carry). */
  sum: Buffer;
  /** How many zero bytes the file begins with. */
  zeros: number;
}

const IN_FLIGHT = 4;

export class SumSource {
  reads = 0;

  constructor(
    private readonly index: HashIndex,
    private readonly scanner: Scanner,
    private readonly kind: ChecksumKind,
    private readonly blockLength: number,
  ) {}

  /**
   * The hash index's fields for a candidate. A file inside a disc image (the index key is the image) is a region,
   * named as the part sources name it (indexField), so its checksum serves a later `--scan IMAGE` too.
   */
  private fields(c: Candidate): { rsync: string; head: string; confirm: string; sum: string; zeros: string } {
    const [offset, length] = indexField(c.ranges && { offset: c.ranges[0]!.offset, length: c.size, ranges: c.ranges });
    const at = (name: string): string => indexFieldName(name, offset, length);
    return {
      // (A block longer than the head has a field of its own: builds before took its sum over the head alone.)
      rsync: at(`${this.blockLength > HEAD_LENGTH ? 'rsync64.2' : 'rsync64'}@${this.blockLength}`),
      head: at(`${CONFIRM}@0+${Math.min(c.size, HEAD_LENGTH)}`),
      confirm: at(CONFIRM),
      sum: at(this.kind),
      zeros: at('zeros'),
    };
  }

  private cached(c: Candidate): CandidateSums | undefined {
    const f = this.fields(c);
    const len = this.kind === 'md5' ? 16 : 32;
    const rsync = decodeB64(this.index.getValue(c.path, c.identity, f.rsync) ?? '', 8);
    const head = decodeB64(this.index.getValue(c.path, c.identity, f.head) ?? '', 32);
    const confirm = decodeB64(this.index.getValue(c.path, c.identity, f.confirm) ?? '', 32);
    const sum = decodeB64(this.index.getValue(c.path, c.identity, f.sum) ?? '', len);
    const zeros = Number(this.index.getValue(c.path, c.identity, f.zeros) ?? NaN); // (an index of versions before: read again once)
    return rsync && head && confirm && sum && Number.isSafeInteger(zeros) ? { rsync, head, confirm, sum, zeros } : undefined;
  }

  private async compute(c: Candidate): Promise<CandidateSums> {
    this.reads++;
    const { rsync, head, sum, confirm, zeros } = await this.scanner.fileSums(c.path, c.size, this.kind, this.blockLength, c.ranges);
    const f = this.fields(c);
    this.index.setValue(c.path, c.identity, f.rsync, encodeB64(rsync));
    this.index.setValue(c.path, c.identity, f.head, encodeB64(head));
    this.index.setValue(c.path, c.identity, f.confirm, encodeB64(confirm));
    this.index.setValue(c.path, c.identity, f.sum, encodeB64(sum));
    this.index.setValue(c.path, c.identity, f.zeros, String(zeros));
    return { rsync, head, confirm, sum, zeros };
  }

  /**
   * The sums of every candidate, in order; a file that cannot be read is warned about and left out
   * (undefined), as jigdo-file skips it.
   */
  async all(candidates: Candidate[], warn: (line: string) => void, onDone?: (c: Candidate) => void): Promise<Array<CandidateSums | undefined>> {
    const out = new Array<CandidateSums | undefined>(candidates.length);
    await eachLimit([...candidates.keys()], IN_FLIGHT, async (i) => {
      const c = candidates[i]!;
      try {
        out[i] = this.cached(c) ?? (await this.compute(c));
      } catch (err) {
        warn(`${shown(c.path)}: ${errorMessage(err)} (not used)`);
      }
      onDone?.(c);
    });
    return out;
  }
}
