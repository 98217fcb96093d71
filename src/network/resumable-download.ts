import type { FileHandle } from 'node:fs/promises';
import { JigdoError } from '../format/errors.js';
import { backoff, sleep } from './backoff.js';
import { PaceCheck } from './body-pump.js';
import { TooLarge, type BodyRules } from './body-rules.js';
import type { FetchContext } from './fetch-context.js';
import { FetchError, toFetchError } from './fetch-error.js';
import type { RangeResult } from './http-client.js';
import { mirrorOf } from './mirror-board.js';

/**
 * Downloads a whole file of unknown size from one URL into `fh`, resuming after cuts, with bounded retries
 * (`opts.retries` attempts that got no further than the best one so far, or that left the download as a whole
 * slower than MIN_BYTES_PER_SECOND over a timeout period); what breaks `rules` fails at
 * once with a RefusedDownload (the caller removes what was written). Every failure is a JigdoError naming the URL, or
 * the cache directory when storing failed.
 *
 * `from`: the bytes `fh` already holds (an earlier run's, of the same file): asked for from there on, without If-Range
 * (their version is not known; the caller's checksum judges the whole). A server that has fewer bytes (416) or ignores
 * Range sends the file from byte 0. Returns `from` if the file holds those bytes still, 0 if it was written from byte 0.
 */
export function downloadWhole(ctx: FetchContext, url: string, fh: FileHandle, rules: BodyRules, from = 0, fresh = false): Promise<number> {
  return new WholeDownload(ctx, url, fh, rules, from, fresh).run();
}

/** One downloadWhole: where it stands across its attempts. */
class WholeDownload {
  private readonly mirror: string;
  private pos: number;
  private total: number | undefined;
  /**
   * The version of the file the bytes written so far are of (ETag or Last-Modified), sent as If-Range when
   * resuming: a file replaced on the server between two requests was stitched from both versions.
   */
  private validator: string | undefined;
  private failures = 0;
  /** The furthest any attempt got: an attempt that does not pass it counts as a failure. */
  private best: number;
  /** The server ignores Range: every attempt starts from byte 0. */
  private fromZero = false;
  /** Where the last answer ended when it was a 206 that did not state the file's size (`bytes 0-1037/*`). */
  private unstatedEnd: number | undefined;
  /**
   * The minimum pace across attempts (each request's own check ends with it): a server that cut every answer after a
   * few bytes got further each time, so it never failed and was asked again at once: 130 requests for a 2 KB template
   * at 16 bytes per 200 ms answer, days for a 30 MB one. Fed at each failed attempt's end; the waits count too.
   */
  private pace: PaceCheck;

  constructor(
    private readonly ctx: FetchContext,
    private readonly url: string,
    private readonly fh: FileHandle,
    private readonly rules: BodyRules,
    private from: number,
    /** Every request asked past caches (RangeRequest.fresh). */
    private readonly fresh: boolean,
  ) {
    this.mirror = mirrorOf(url);
    this.pos = this.best = from;
    this.pace = new PaceCheck(url, ctx.opts.timeoutMs);
  }

  async run(): Promise<number> {
    try {
      for (;;) {
        const done = await this.attempt();
        if (done !== undefined) return done;
      }
    } catch (err) {
      // What the file holds past the bytes written this time (an earlier run's, after an answer from byte 0) is not of
      // them: the next run would go on from its end. (None written: the file is as it was. A shutdown may have closed it.)
      if (this.pos > 0) await this.fh.truncate(this.pos).catch(() => undefined);
      throw err;
    }
  }

  /** One request: what `run` returns when it got the rest of the file, undefined when another is to be made. */
  private async attempt(): Promise<number | undefined> {
    const { ctx, url, mirror } = this;
    const { http, board } = ctx;
    http.assertOpen(url); // a shutdown is no mirror's failure: not retried
    if (this.fromZero) this.pos = this.from = 0;
    const before = this.pos;
    let moved = 0;
    let t0 = 0;
    let r: RangeResult;
    try {
      r = await ctx.request(() => {
        t0 = performance.now();
        board.requestStarted(mirror);
        const resume = this.pos > 0 && this.validator !== undefined ? { ifRange: this.validator } : {};
        return http.fetchRange(url, { start: this.pos, total: this.total, fresh: this.fresh, ...resume }, this.fh, (p) => {
          board.received(mirror, p - this.pos);
          moved += p - this.pos;
          this.pos = p;
        }, { onHeaders: (h) => this.headers(h), rules: this.rules });
      });
      board.requestDone(mirror, Math.max(0, r.end - before), performance.now() - t0, r.ttfbMs);
      if (r.whole || this.total !== undefined) {
        await this.fh.truncate(r.end);
        return this.from;
      }
    } catch (err) {
      const e = toFetchError(url, err);
      if (e.status === 416 && before === this.unstatedEnd) {
        // No bytes past the end of the last 206: that was the file's end.
        board.requestDone(mirror, 0, performance.now() - t0, performance.now() - t0);
        await this.fh.truncate(before);
        return this.from;
      }
      await this.failed(e, before, moved);
      return undefined;
    }
    // A 206 that did not state the file's size: the rest is asked for, until a 416 says there is none. Each answer
    // moves on, so only the pace across them bounds a server that sends a few bytes at a time.
    this.unstatedEnd = this.best = this.pos = r.end;
    const slow = slowAcross(this.pace, moved, new FetchError(url, 'short', `HTTP 206 up to byte ${r.end} without the file's size`));
    if (slow) throw new JigdoError(url, `cannot fetch: ${slow.message}`);
    return undefined;
  }

  /** What an answer's headers say about the file. */
  private headers(h: { whole: boolean; total?: number; validator?: string }): void {
    if (!h.whole) return void (this.total ??= h.total);
    // From byte 0: the first answer, or (after an If-Range) the file's new version, whatever was written before.
    this.pos = this.from = 0;
    this.total = h.total;
    this.validator = h.validator;
  }

  /** Judges a failed request that started at `before` and moved `moved` bytes: throws when no other is to be made. */
  private async failed(e: FetchError, before: number, moved: number): Promise<void> {
    const { ctx, url } = this;
    if (e.kind === 'local') {
      ctx.board.requestFailed(this.mirror, 'aborted', e.message); // ends the request; not held against the mirror
      throw new JigdoError(ctx.cache.dir, e.message);
    }
    ctx.board.requestFailed(this.mirror, e.kind, e.message);
    if (e.kind === 'refused') throw new RefusedDownload(url, e.message, e instanceof TooLarge);
    if ((e.status === 416 || e.kind === 'no-range') && before > 0 && before === this.from) {
      // Bytes of an earlier run past the end of the file there now (it is another file, or they were), or a server
      // that cannot send the rest alone: from byte 0, at once (no mirror's failure).
      this.pos = this.best = this.from = 0;
      this.fromZero = e.kind === 'no-range';
      return;
    }
    if (e.kind === 'no-range') this.fromZero = true;
    else if (e.permanent) throw new JigdoError(url, `cannot fetch: ${e.message}`);
    // Progress is measured against the best attempt so far: a server that ignores Range and cuts
    // every download at the same point must not make us restart from byte 0 forever.
    // A trickle moves forward too, but a slow server stays slow: it counts as a failure, within a request or across.
    // Judged only over attempts that each got further: one that did not is a failure already (and its wait would
    // make the next one look slow), so the window starts again after it.
    const further = this.pos > this.best && e.kind !== 'slow';
    const across = further ? slowAcross(this.pace, moved, e) : undefined;
    const slow = e.kind === 'slow' ? e : across;
    const progressed = further && !slow;
    if (progressed) this.best = this.pos;
    else this.failures++;
    if (this.failures > ctx.opts.retries) throw new JigdoError(url, `cannot fetch: ${(slow ?? e).message}`);
    if (!progressed) {
      await sleep(backoff(this.failures), ctx.http.closing);
      this.pace = new PaceCheck(url, ctx.opts.timeoutMs); // after the wait: it is no part of the next attempt's pace
    }
  }
}

/** Not the file wanted: not what it must start with, or (`tooLarge`) larger than allowed. */
export class RefusedDownload extends JigdoError {
  override name = 'RefusedDownload';
  constructor(
    url: string,
    problem: string,
    readonly tooLarge: boolean,
  ) {
    super(url, problem);
  }
}

/** The 'slow' failure when the attempts of the last timeout period, `moved` bytes the latest one's, were a trickle. */
function slowAcross(pace: PaceCheck, moved: number, last: FetchError): FetchError | undefined {
  try {
    pace.add(moved);
    return undefined;
  } catch (err) {
    if (!(err instanceof FetchError)) throw err;
    return new FetchError(last.url, 'slow', `${err.message}, over requests each cut short (the last: ${last.message})`);
  }
}
