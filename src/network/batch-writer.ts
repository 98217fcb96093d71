import type { FileHandle } from 'node:fs/promises';
import { errorMessage } from '../format/errors.js';
import { writeAll } from '../util/write-all.js';
import { FetchError } from './fetch-error.js';

/** Bytes of body gathered before one write to the file. */
const WRITE_BATCH = 512 * 1024;
/**
 * Or once this long passed since the last write: a slow body (a template over a slow link: 512 KiB took 10 s at
 * 50 KB/s) still moves its progress (onData: the mirror's byte count, where a cut download resumes, the background
 * mount's sign of life to its parent) at least this often.
 */
const WRITE_EVERY_MS = 500;

/**
 * Body chunks are small (~16-64 KiB): they are written to the file in batches of WRITE_BATCH, with one writev
 * and no concatenation into a new buffer per batch. `pos` is where the written bytes end, `end` where the
 * added ones do.
 *
 * Owns `pending`/`pendingBytes` (added, not yet written) and `pos`. One body's pump drives it and awaits
 * each `add` before the next, so a flush never overlaps another. A failed write is ours (a full disk), not
 * the mirror's: it throws kind 'local'.
 */
export class BatchWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private writtenAt = Date.now();

  constructor(
    private readonly url: string,
    private readonly fh: FileHandle,
    public pos: number,
    private readonly onData: (pos: number) => void,
  ) {}

  get end(): number {
    return this.pos + this.pendingBytes;
  }

  async add(data: Buffer): Promise<void> {
    this.pending.push(data);
    this.pendingBytes += data.length;
    if (this.pendingBytes >= WRITE_BATCH || Date.now() - this.writtenAt >= WRITE_EVERY_MS) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const chunks = this.pending;
    const n = this.pendingBytes;
    const at = this.pos;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      const done = (await this.fh.writev(chunks, at)).bytesWritten;
      if (done < n) {
        const rest = Buffer.concat(chunks, n).subarray(done); // a short write: rare (a full disk says ENOSPC next)
        await writeAll(this.fh, rest, at + done);
      }
    } catch (err) {
      throw new FetchError(this.url, 'local', `cannot store what it sent: ${errorMessage(err)}`);
    }
    this.pos = at + n;
    this.writtenAt = Date.now();
    this.onData(this.pos);
  }
}
