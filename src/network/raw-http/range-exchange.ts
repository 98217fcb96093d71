import { createHash, type Hash } from 'node:crypto';
import { writeSync } from 'node:fs';
import { errorMessage } from '../../format/errors.js';
import { PaceCheck } from '../body-pump.js';
import { FetchError, toFetchError } from '../fetch-error.js';
import { rangeAnswer, rangeHeader, statusFailure } from '../http-answer.js';
import { requestUrl } from '../request-url.js';
import type { Connection, ConnectionPool, ConnectionUser } from './connections.js';
import type { FetchFailure, FetchTask } from './protocol.js';
import { MAX_HEAD_BYTES, parseResponseHead, type ResponseHead } from './response-head.js';

/** Progress is reported after at least this many more bytes are written (and at the end). */
const PROGRESS_STEP = 1024 * 1024;
/**
 * Interim answers (1xx but 101) passed over before the final one: servers send `100 Continue` unasked, and a client
 * must read past it (RFC 9110 §15.2); undici drops the connection on one ("bad response"). More is a broken server.
 */
export const MAX_INTERIM_ANSWERS = 16;

export interface ExchangeResult {
  end: number;
  whole: boolean;
  total?: number;
  ttfbMs: number;
  /** The hash of bytes [0, end) as they arrived, when the task asked for it. */
  digest?: Uint8Array;
}

/** What an exchange tells its requester (fetch-worker.ts posts it to the main thread). */
export interface ExchangeReport {
  headers(whole: boolean, total: number | undefined): void;
  progress(pos: number): void;
  done(result: ExchangeResult): void;
  failed(kind: FetchFailure, message: string, pos: number, status?: number, retryAfterMs?: number): void;
}

/**
 * One ranged GET on a keep-alive connection, its body written to the task's file descriptor as it arrives (and
 * hashed, when asked) on this thread: no buffer or promise per chunk. What HttpClient.fetchRange does with undici,
 * for the common answer: a 200 or 206 with a Content-Length, after any interim (1xx) answers. Anything else that is
 * not a plain failure (a redirect, a chunked body) is 'fallback' before a byte is written, and the main thread asks
 * undici.
 *
 * Owns its phase, the connection while it runs (given back idle after a clean end, closed otherwise) and the
 * position written up to. Reports exactly one done or failed.
 */
export class RangeExchange implements ConnectionUser {
  private readonly url: URL;
  private conn!: Connection;
  private phase: 'head' | 'body' | 'over' = 'head';
  private headLen = 0;
  private interimAnswers = 0;
  private gotBytes = false;
  private pos: number;
  private stop = Infinity;
  /** Body bytes the Content-Length still announces. */
  private bodyLeft = 0;
  private keepAlive = false;
  private whole = false;
  private total: number | undefined;
  private hash: Hash | undefined;
  private readonly t0 = performance.now();
  private ttfbMs = 0;
  private reported: number;
  private pace: PaceCheck | undefined;
  /** The answer's head must be complete this long after the request (undici's headersTimeout): bytes do not extend it. */
  private headDeadline: NodeJS.Timeout | undefined;

  constructor(
    private readonly task: FetchTask,
    private readonly pool: ConnectionPool,
    private readonly report: ExchangeReport,
  ) {
    this.url = requestUrl(task.url);
    this.pos = this.reported = task.start;
    this.send();
  }

  private send(): void {
    const range = rangeHeader(this.task);
    this.conn = this.pool.get(this.url);
    this.conn.take(this);
    this.conn.socket.setTimeout(this.task.timeoutMs);
    clearTimeout(this.headDeadline);
    this.headDeadline = setTimeout(() => this.fail(new FetchError(this.task.url, 'timeout', 'no response headers in time')), this.task.timeoutMs);
    this.headDeadline.unref();
    const target = `${this.url.pathname}${this.url.search}`;
    this.conn.socket.write(`GET ${target} HTTP/1.1\r\nhost: ${this.url.host}\r\nuser-agent: jigdofs/0.1\r\n${range ? `range: ${range}\r\n` : ''}\r\n`);
  }

  onBytes(buf: Buffer, n: number): void {
    this.gotBytes = true;
    let off = 0;
    try {
      if (this.phase === 'head') {
        off = this.readHead(buf, n);
        if (off < 0) return;
      }
      if (this.phase === 'body') this.readBody(buf, off, n);
    } catch (err) {
      this.fail(toFetchError(this.task.url, err));
    }
  }

  /**
   * Adds to the head; the offset in `buf` where the body starts once the final head is complete (interim ones
   * before it are dropped: MAX_INTERIM_ANSWERS), else -1. Only as many
   * bytes as the head buffer holds are gathered at a time (grown up to MAX_HEAD_BYTES while no blank line came), so
   * the body bytes of a read do not grow every connection's head buffer.
   */
  private readHead(buf: Buffer, n: number): number {
    const c = this.conn;
    for (let used = 0; used < n; ) {
      if (this.headLen === c.head.length) {
        const bigger = Buffer.allocUnsafeSlow(Math.min(c.head.length * 2, MAX_HEAD_BYTES));
        c.head.copy(bigger, 0, 0, this.headLen);
        c.head = bigger;
      }
      const take = Math.min(n - used, c.head.length - this.headLen);
      buf.copy(c.head, this.headLen, used, used + take);
      this.headLen += take;
      used += take;
      for (let head = parseResponseHead(this.task.url, c.head, this.headLen); head; head = parseResponseHead(this.task.url, c.head, this.headLen)) {
        if (head.status < 200 && head.status >= 100 && head.status !== 101) {
          // An interim answer: dropped from the head buffer; the final one may follow in the same bytes. (The head's
          // deadline still runs: interim answers do not extend it.)
          if (++this.interimAnswers > MAX_INTERIM_ANSWERS) throw new FetchError(this.task.url, 'reset', `more than ${MAX_INTERIM_ANSWERS} interim (1xx) answers before the answer`);
          c.head.copy(c.head, 0, head.length, this.headLen);
          this.headLen -= head.length;
          continue;
        }
        clearTimeout(this.headDeadline);
        this.ttfbMs = performance.now() - this.t0;
        this.startBody(head);
        return used - (this.headLen - head.length); // (the head buffer's last bytes are this read's first `used`)
      }
    }
    return -1;
  }

  private startBody(head: ResponseHead): void {
    const { url, start, end, total } = this.task;
    if ((head.status >= 100 && head.status < 200) || (head.status >= 300 && head.status < 400)) {
      return this.fallback(`HTTP ${head.status}`);
    }
    const failure = statusFailure(url, head.status, head.headers);
    if (failure) return this.fail(failure);
    const length = head.headers['content-length'];
    if (head.headers['transfer-encoding'] !== undefined || length === undefined || !/^\d+$/.test(length)) {
      return this.fallback('a body without a Content-Length');
    }
    const { whole, stated, stop } = rangeAnswer(url, { statusCode: head.status, headers: head.headers }, { start, end, total });
    this.whole = whole;
    this.total = stated;
    this.report.headers(whole, stated);
    this.stop = stop;
    this.bodyLeft = Number(length);
    this.keepAlive = !head.close;
    if (this.task.hash && start === 0) this.hash = createHash(this.task.hash);
    this.pace = new PaceCheck(url, this.task.timeoutMs);
    this.phase = 'body';
    if (this.bodyLeft === 0) this.bodyEnded(false);
  }

  private readBody(buf: Buffer, off: number, n: number): void {
    const avail = Math.min(n - off, this.bodyLeft);
    this.pace!.add(avail);
    const data = Math.min(avail, this.stop - this.pos);
    if (data > 0) {
      this.hash?.update(buf.subarray(off, off + data));
      this.write(buf, off, data);
    }
    this.bodyLeft -= avail;
    if (this.pos - this.reported >= PROGRESS_STEP) this.report.progress((this.reported = this.pos));
    if (this.pos >= this.stop || this.bodyLeft === 0) this.bodyEnded(n - off > avail);
  }

  private write(buf: Buffer, off: number, length: number): void {
    try {
      for (let done = 0; done < length; ) done += writeSync(this.task.fd, buf, off + done, length - done, this.pos + done);
    } catch (err) {
      throw new FetchError(this.task.url, 'local', `cannot store what it sent: ${errorMessage(err)}`);
    }
    this.pos += length;
  }

  /** The body reached what was asked, or its own end; `extra`: the server sent bytes after it. */
  private bodyEnded(extra: boolean): void {
    if (this.pos < this.stop && this.stop !== Infinity) {
      const { start } = this.task;
      return this.fail(new FetchError(this.task.url, 'short', `body ended after ${this.pos - start} of ${this.stop - start} bytes`));
    }
    this.phase = 'over';
    if (this.keepAlive && this.bodyLeft === 0 && !extra) this.pool.put(this.conn);
    else this.conn.close();
    const digest = this.hash ? new Uint8Array(this.hash.digest()) : undefined;
    this.report.done({ end: this.pos, whole: this.whole, total: this.total, ttfbMs: this.ttfbMs, digest });
  }

  onEnd(err?: Error): void {
    if (this.phase === 'over') return;
    // A reused connection that ends before any answer was most likely closed by the server while idle: ask again.
    if (!this.gotBytes && this.conn.used) return this.send();
    const { url } = this.task;
    if (err) return this.fail(toFetchError(url, err));
    this.fail(new FetchError(url, 'reset', `connection cut (other side closed${this.phase === 'head' ? ' before an answer' : ''})`));
  }

  onTimeout(): void {
    const { url } = this.task;
    if (!this.conn.connected) this.fail(new FetchError(url, 'timeout', 'connect timeout'));
    else if (this.phase === 'head') this.fail(new FetchError(url, 'timeout', 'no response headers in time'));
    else this.fail(new FetchError(url, 'timeout', 'stalled: no data in time'));
  }

  abort(): void {
    this.fail(new FetchError(this.task.url, 'aborted', 'aborted'));
  }

  private fallback(why: string): void {
    this.end('fallback', why);
  }

  private fail(e: FetchError): void {
    this.end(e.kind, e.message, e.status, e.retryAfterMs);
  }

  private end(kind: FetchFailure, message: string, status?: number, retryAfterMs?: number): void {
    if (this.phase === 'over') return;
    this.phase = 'over';
    clearTimeout(this.headDeadline);
    this.conn.close();
    this.report.failed(kind, message, this.pos, status, retryAfterMs);
  }
}
