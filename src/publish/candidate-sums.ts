import { shown } from '../format/byte-string.js';
import type { ChecksumKind } from '../format/checksum.js';
import { errorMessage } from '../format/errors.js';
import { indexFieldName, type HashIndex } from '../sources/hash-index.js';
import { LaterValues } from '../sources/hash-index-lines.js';
import { indexField } from '../sources/verified-copy.js';
import { CandidateSums, type Scanner } from './scanner.js';
import type { Candidate } from './candidates.js';
import { CONFIRM, HEAD_LENGTH } from './scan-protocol.js';

/**
 * Each candidate's sums (scanner.ts CandidateSums): from the persistent hash index (path + identity) when it has them,
 * else read on the scan workers and recorded there. `reads` counts the files actually read.
 */

/**
 * Batches of candidate files in flight: two per scan worker, so each has the next queued. A batch is at most
 * BATCH_FILES files (one message per file made postMessage and its garbage the main thread's limit on a large tree)
 * and about BATCH_BYTES, so large files spread over the workers.
 */
const IN_FLIGHT_PER_WORKER = 2;
const BATCH_FILES = 256;
const BATCH_BYTES = 32 * 1024 * 1024;

/** The hash index's fields of a candidate's values (SumSource.fields). */
interface Fields {
  rsync: string;
  head: string;
  confirm: string;
  sum: string;
  zeros: string;
}

/** A candidate's hash-index values, made when the index saves them (one small object each, no closure). */
class Recorded extends LaterValues {
  constructor(
    private readonly source: SumSource,
    private readonly c: Candidate,
    private readonly sums: CandidateSums,
  ) {
    super();
  }

  get identity(): Candidate['identity'] {
    return this.c.identity;
  }

  values(): Array<[field: string, value: string]> {
    return this.source.indexValues(this.c, this.sums);
  }
}

export class SumSource {
  reads = 0;
  /** Every candidate added, in order; `sums[i]` is candidates[i]'s (undefined: it could not be read, warned about). */
  readonly candidates: Candidate[] = [];
  private readonly sums: Array<CandidateSums | undefined> = [];
  /** Candidates (indexes) for the next batch, and their bytes. */
  private batch: number[] = [];
  private bytes = 0;
  private readonly running = new Set<Promise<void>>();
  private failure: { err: unknown } | undefined;
  /** A whole file's fields, by the length of its head (fields). */
  private readonly wholeFields = new Map<number, Fields>();

  constructor(
    private readonly index: HashIndex,
    private readonly scanner: Scanner,
    private readonly kind: ChecksumKind,
    private readonly blockLength: number,
    private readonly warn: (line: string) => void,
    private readonly onDone: (c: Candidate) => void = () => undefined,
  ) {}

  /**
   * The hash index's fields for a candidate. A file inside a disc image (the index key is the image) is a region,
   * named as the part sources name it (indexField).
   */
  private fields(c: Candidate): Fields {
    if (c.ranges) return this.fieldsAt(c);
    // A whole file's differ only by the head's length: made once each (five strings per file of 100,000 made garbage).
    const head = Math.min(c.size, HEAD_LENGTH);
    let f = this.wholeFields.get(head);
    if (!f) this.wholeFields.set(head, (f = this.fieldsAt(c)));
    return f;
  }

  private fieldsAt(c: Candidate): Fields {
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
    const v = this.index.values(c.path, c.identity);
    if (!v) return undefined;
    const f = this.fields(c);
    const zeros = Number(v[f.zeros] ?? NaN); // (an index of versions before: read again once)
    if (!Number.isSafeInteger(zeros)) return undefined;
    return CandidateSums.ofText({ rsync: v[f.rsync], head: v[f.head], confirm: v[f.confirm], sum: v[f.sum] }, zeros, this.kind === 'md5' ? 16 : 32);
  }

  private record(c: Candidate, sums: CandidateSums): void {
    this.reads++;
    this.index.setValuesLater(c.path, new Recorded(this, c, sums));
  }

  /** The hash index's values of a candidate read. */
  indexValues(c: Candidate, sums: CandidateSums): Array<[field: string, value: string]> {
    const f = this.fields(c);
    const text = sums.encoded();
    return [[f.rsync, text.rsync], [f.head, text.head], [f.confirm, text.confirm], [f.sum, text.sum], [f.zeros, String(sums.zeros)]];
  }

  /**
   * More candidates, in order: those the hash index knows are done at once, the others go to the scan workers in
   * batches. Waits while two batches per scan worker are being read (the walk goes on meanwhile: what it finds waits in its queue).
   */
  async add(candidates: Candidate[]): Promise<void> {
    for (const c of candidates) {
      const i = this.candidates.push(c) - 1;
      this.sums[i] = this.cached(c);
      if (this.sums[i]) {
        this.onDone(c);
        continue;
      }
      this.batch.push(i);
      this.bytes += c.size;
      if (this.batch.length >= BATCH_FILES || this.bytes >= BATCH_BYTES) await this.send();
    }
  }

  /** The sums of every candidate added, in order; a file that could not be read is undefined (as jigdo-file skips it). */
  async finish(): Promise<Array<CandidateSums | undefined>> {
    await this.send();
    await Promise.all(this.running);
    if (this.failure) throw this.failure.err;
    return this.sums;
  }

  private async send(): Promise<void> {
    const batch = this.batch;
    [this.batch, this.bytes] = [[], 0];
    if (batch.length === 0) return;
    while (this.running.size >= IN_FLIGHT_PER_WORKER * this.scanner.size) await Promise.race(this.running);
    if (this.failure) throw this.failure.err; // (a scan worker died: no file is to blame)
    const job: Promise<void> = this.read(batch)
      .catch((err: unknown) => void (this.failure ??= { err }))
      .finally(() => this.running.delete(job));
    this.running.add(job);
  }

  private async read(batch: number[]): Promise<void> {
    const jobs = batch.map((i) => {
      const c = this.candidates[i]!;
      return { path: c.path, size: c.size, ...(c.ranges ? { ranges: c.ranges } : {}) };
    });
    const got = await this.scanner.fileSums(jobs, this.kind, this.blockLength);
    batch.forEach((i, k) => {
      const c = this.candidates[i]!;
      const sums = got[k]!;
      if (sums instanceof Error) this.warn(`${shown(c.path)}: ${errorMessage(sums)} (not used)`);
      else this.record(c, (this.sums[i] = sums));
      this.onDone(c);
    });
  }
}
