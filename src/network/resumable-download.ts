import type { FileHandle } from 'node:fs/promises';
import { JigdoError } from '../format/errors.js';
import { backoff, sleep } from './backoff.js';
import { PaceCheck } from './body-pump.js';
import { TooLarge, type BodyRules } from './body-rules.js';
import type { FetchContext } from './fetch-context.js';
import { FetchError, toFetchError } from './fetch-error.js';
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
export async function downloadWhole(ctx: FetchContext, url: string, fh: FileHandle, rules: BodyRules, from = 0): Promise<number> {
  const { http, board } = ctx;
  const mirror = mirrorOf(url);
  let pos = from;
  let total: number | undefined;
  /**
   * The version of the file the bytes written so far are of (ETag or Last-Modified), sent as If-Range when
   * resuming: a file replaced on the server between two requests was stitched from both versions.
   */
  let validator: string | undefined;
  let failures = 0;
  /** The furthest any attempt got: an attempt that does not pass it counts as a failure. */
  let best = from;
  /** The server ignores Range: every attempt starts from byte 0. */
  let fromZero = false;
  /**
   * The minimum pace across attempts (each request's own check ends with it): a server that cut every answer after a
   * few bytes got further each time, so it never failed and was asked again at once: 130 requests for a 2 KB template
   * at 16 bytes per 200 ms answer, days for a 30 MB one. Fed at each failed attempt's end; the waits count too.
   */
  let pace = new PaceCheck(url, ctx.opts.timeoutMs);
  try {
    return await attempts();
  } catch (err) {
    // What the file holds past the bytes written this time (an earlier run's, after an answer from byte 0) is not of
    // them: the next run would go on from its end. (None written: the file is as it was. A shutdown may have closed it.)
    if (pos > 0) await fh.truncate(pos).catch(() => undefined);
    throw err;
  }

  async function attempts(): Promise<number> {
    for (;;) {
      http.assertOpen(url); // a shutdown is no mirror's failure: not retried
      if (fromZero) pos = from = 0;
      const before = pos;
      let moved = 0;
      let t0 = 0;
      try {
        const r = await ctx.request(() => {
          t0 = performance.now();
          board.requestStarted(mirror);
          return http.fetchRange(url, { start: pos, total, ...(pos > 0 && validator !== undefined && { ifRange: validator }) }, fh, (p) => {
            board.received(mirror, p - pos);
            moved += p - pos;
            pos = p;
          }, {
            onHeaders: (h) => {
              if (!h.whole) return void (total ??= h.total);
              // From byte 0: the first answer, or (after an If-Range) the file's new version, whatever was written before.
              pos = from = 0;
              total = h.total;
              validator = h.validator;
            },
            rules,
          });
        });
        board.requestDone(mirror, Math.max(0, r.end - before), performance.now() - t0, r.ttfbMs);
        await fh.truncate(r.end);
        return from;
      } catch (err) {
        const e = toFetchError(url, err);
        if (e.kind === 'local') {
          board.requestFailed(mirror, 'aborted', e.message); // ends the request; not held against the mirror
          throw new JigdoError(ctx.cache.dir, e.message);
        }
        board.requestFailed(mirror, e.kind, e.message);
        if (e.kind === 'refused') throw new RefusedDownload(url, e.message, e instanceof TooLarge);
        if ((e.status === 416 || e.kind === 'no-range') && before > 0 && before === from) {
          // Bytes of an earlier run past the end of the file there now (it is another file, or they were), or a server
          // that cannot send the rest alone: from byte 0, at once (no mirror's failure).
          pos = best = from = 0;
          fromZero = e.kind === 'no-range';
          continue;
        }
        if (e.kind === 'no-range') fromZero = true;
        else if (e.permanent) throw new JigdoError(url, `cannot fetch: ${e.message}`);
        // Progress is measured against the best attempt so far: a server that ignores Range and cuts
        // every download at the same point must not make us restart from byte 0 forever.
        // A trickle moves forward too, but a slow server stays slow: it counts as a failure, within a request or across.
        // Judged only over attempts that each got further: one that did not is a failure already (and its wait would
        // make the next one look slow), so the window starts again after it.
        const further = pos > best && e.kind !== 'slow';
        const across = further ? slowAcross(pace, moved, e) : undefined;
        const slow = e.kind === 'slow' ? e : across;
        const progressed = further && !slow;
        if (progressed) best = pos;
        else failures++;
        if (failures > ctx.opts.retries) throw new JigdoError(url, `cannot fetch: ${(slow ?? e).message}`);
        if (!progressed) {
          await sleep(backoff(failures), ctx.http.closing);
          pace = new PaceCheck(url, ctx.opts.timeoutMs); // after the wait: it is no part of the next attempt's pace
        }
      }
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
