import type { IncomingHttpHeaders } from 'node:http';
import type { ServedImage } from './served-image.js';
import { parseHttpDate } from '../format/http-date.js';

/** The entity tags of an `If-None-Match` / `If-Match` list (`*` kept as is). */
function tagList(header: string): string[] {
  return header.split(',').map((t) => t.trim()).filter((t) => t !== '');
}

/** Weak comparison (RFC 9110 §8.8.3.2), as If-None-Match uses: `W/` is ignored on either side. */
const weakEqual = (a: string, b: string): boolean => a.replace(/^W\//, '') === b.replace(/^W\//, '');

/** A date header, or undefined when absent or not an HTTP-date (then it is ignored: RFC 9110 §13.1.3, §13.1.4). */
function dateHeader(value: string | undefined): number | undefined {
  return value === undefined ? undefined : parseHttpDate(value);
}

/**
 * Whether a GET/HEAD is answered 304 Not Modified (RFC 9110 §13.2.2): If-None-Match decides when given
 * (it matches our tag or `*`); otherwise If-Modified-Since at or after our Last-Modified and not after `now`. A date
 * from the future (a client's clock ahead, `curl -z` of a file touched later) is no date we could have sent: answered
 * 304, a template replaced by an older-dated one (a new image) would have left that client with the old bytes. Apache
 * ignores it the same way.
 */
export function notModified(headers: IncomingHttpHeaders, image: ServedImage, now = Date.now()): boolean {
  const inm = headers['if-none-match'];
  if (inm !== undefined) return tagList(inm).some((t) => t === '*' || weakEqual(t, image.etag));
  const since = dateHeader(headers['if-modified-since']);
  return since !== undefined && image.lastModified.getTime() <= since && since <= now;
}

/**
 * Whether `If-Range` lets the Range header apply (RFC 9110 §13.1.5): an entity tag must match ours
 * strongly (a weak tag never does); a date must equal our Last-Modified exactly. Absent: yes.
 */
export function rangeApplies(headers: IncomingHttpHeaders, image: ServedImage): boolean {
  const raw = headers['if-range'];
  const ifRange = Array.isArray(raw) ? raw[0] : raw;
  if (ifRange === undefined) return true;
  const v = ifRange.trim();
  if (v.startsWith('"') || v.startsWith('W/')) return v === image.etag;
  const t = dateHeader(v);
  return t !== undefined && t === image.lastModified.getTime();
}

/**
 * A failed precondition, so the answer is 412 (RFC 9110 §13.2.2 steps 1-2): If-Match with a tag list that does not
 * hold ours (strong comparison), or, without If-Match, If-Unmodified-Since before our Last-Modified. Download managers
 * send them when resuming (`curl -z -DATE`): they must not get the new image's bytes after their old ones.
 */
export function preconditionFailed(headers: IncomingHttpHeaders, image: ServedImage): boolean {
  const im = headers['if-match'];
  if (im !== undefined) return !tagList(im).some((t) => t === '*' || t === image.etag);
  const since = dateHeader(headers['if-unmodified-since']);
  return since !== undefined && image.lastModified.getTime() > since;
}
