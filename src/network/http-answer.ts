import type { Dispatcher } from 'undici';
import { FetchError } from './fetch-error.js';
import { parseHttpDate } from '../format/http-date.js';

/**
 * What an HTTP answer means for us, from its status line and headers alone: a failure (and of which kind),
 * or, for a Range request, whether the body is the range asked for or the whole file, and the file's size.
 */

/** Redirects followed for one request; one more is 'too many redirects'. */
export const MAX_REDIRECTS = 5;
/** The redirects that are followed (300 too: its Location is the server's choice). */
export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([300, 301, 302, 303, 307, 308]);

export interface RangeRequest {
  start: number;
  /** Exclusive; undefined: to the end of the file. */
  end?: number;
  /** The expected size of the whole file, when known: another size is a 'wrong-size' failure. */
  total?: number;
  /**
   * Sent as If-Range with a range request: the validator of the answer the bytes before `start` came from.
   * A server whose file has changed since then answers 200 with the whole new file, not the new file's range.
   */
  ifRange?: string;
  /** Asked past caches on the way (Cache-Control: no-cache): a copy a proxy keeps turned out not to be the file wanted. */
  fresh?: boolean;
}

/**
 * What identifies this version of the file, for an If-Range: a strong ETag, else Last-Modified (weak ETags may
 * not be used for ranges, RFC 9110 §13.1.5); undefined when the answer gives neither.
 */
export function validatorOf(headers: Record<string, string | string[] | undefined>): string | undefined {
  const etag = headers['etag'];
  if (typeof etag === 'string' && etag.startsWith('"')) return etag;
  const modified = headers['last-modified'];
  return typeof modified === 'string' && modified !== '' ? modified : undefined;
}

/** The Range header's value for `range`; undefined when the request is for the whole file (no header). */
export function rangeHeader(range: RangeRequest): string | undefined {
  const { start, end, total } = range;
  if (start === 0 && (end === undefined || end === total)) return undefined;
  return `bytes=${start}-${end === undefined ? '' : end - 1}`;
}

/** The failure a non-2xx status is (undefined for a 2xx), from the answer's status and headers (Location, Retry-After). */
export function statusFailure(url: string, status: number, headers: Record<string, string | string[] | undefined> = {}): FetchError | undefined {
  if (status >= 200 && status < 300) return undefined;
  const location = headers['location'];
  const kind = status === 404 || status === 410 ? 'not-found' : 'status';
  // A redirect that reaches us was not followed: one too many, one that leads nowhere, or a code never followed
  // (305 Use Proxy, 306, an unassigned 3xx).
  if (status >= 300 && status < 400 && status !== 304) {
    const followed = REDIRECT_STATUSES.has(status);
    const why = !location ? 'a redirect without a Location' : followed ? `too many redirects (more than ${MAX_REDIRECTS}; the next one to ${String(location)})` : `a redirect of a kind that is not followed (to ${String(location)})`;
    return new FetchError(url, 'protocol', `HTTP ${status}: ${why}`, status);
  }
  const retryAfter = status === 503 || status === 429 ? retryAfterMs(headers['retry-after']) : undefined;
  return new FetchError(url, kind, `HTTP ${status}`, status, retryAfter);
}

/** A Retry-After header (delay-seconds, or an HTTP date) in ms from now; undefined when absent or unreadable. */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = parseHttpDate(text) ?? looseHttpDate(text);
  return date === undefined ? undefined : Math.max(0, date - now);
}

/**
 * A date that servers send where an HTTP-date belongs, though it is not one: a zone of UTC or -0000 (Python's
 * formatdate), lower case, `21-Oct-2026`. Taken for Retry-After (ignored, the host was not paused as it asked), not for
 * serve's conditional requests, which must ignore them. A day name first and a time of day inside: Date.parse alone
 * takes "1.5"; no zone is GMT, not the local time Date.parse would take.
 */
function looseHttpDate(text: string): number | undefined {
  if (!/^[A-Za-z]{3,9},? .*\b\d\d:\d\d:\d\d\b/.test(text)) return undefined;
  const t = Date.parse(/GMT|UTC|[+-]\d{4}$/i.test(text) ? text : `${text} GMT`);
  return Number.isNaN(t) ? undefined : t;
}

/**
 * What a 2xx answer to a range request holds: the whole file or the range asked for, the file's size, and where its
 * body must end (`stop`, absolute; Infinity: at the body's own end). A 200 is accepted only for a request from byte 0
 * (a server that ignores Range sends the whole file), or one sent with If-Range (the file changed: its new version,
 * whatever its size). A 206 to an open-ended request that does not state the file's size (`bytes 0-1037/*`) stops
 * where its Content-Range ends: the file may go on past it (downloadWhole asks for the rest).
 */
export function rangeAnswer(
  url: string,
  res: Pick<Dispatcher.ResponseData, 'statusCode' | 'headers'>,
  range: RangeRequest,
): { whole: boolean; stated?: number; stop: number } {
  const { start, end, total } = range;
  if (res.statusCode === 206) {
    const text = String(res.headers['content-range'] ?? '');
    const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(text);
    if (!cr || Number(cr[2]) < Number(cr[1])) throw new FetchError(url, 'protocol', `bad Content-Range "${text}"`);
    const stated = cr[3] === '*' ? undefined : Number(cr[3]);
    if (Number(cr[1]) !== start) throw new FetchError(url, 'protocol', `asked for bytes from ${start}, got Content-Range ${text}`);
    checkSize(url, total, stated);
    return { whole: false, stated, stop: end ?? stated ?? total ?? Number(cr[2]) + 1 };
  }
  // After an If-Range, a 200 is the file as it is now, whole: it changed since the bytes before `start` came.
  if (start !== 0 && range.ifRange === undefined) throw new FetchError(url, 'no-range', `HTTP ${res.statusCode} to a Range request: the server ignores Range`, res.statusCode);
  const len = res.headers['content-length'];
  const stated = len === undefined ? undefined : Number(len);
  const changed = start !== 0;
  if (!changed) checkSize(url, total, stated);
  return { whole: true, stated, stop: stated ?? (changed ? undefined : total) ?? Infinity };
}

/** A size the server states other than the one expected is a 'wrong-size' failure. */
function checkSize(url: string, total: number | undefined, stated: number | undefined): void {
  if (total !== undefined && stated !== undefined && stated !== total) {
    throw new FetchError(url, 'wrong-size', `the file there has ${stated} bytes, expected ${total}`);
  }
}
