import { FetchError } from '../fetch-error.js';

/** The most header bytes accepted before the blank line (undici's default limit is 16 KiB; nginx sends ~250). */
export const MAX_HEAD_BYTES = 64 * 1024;

export interface ResponseHead {
  status: number;
  /** Lower-cased names; a repeated header's values joined with ", " (RFC 9110 §5.3). */
  headers: Record<string, string>;
  /** HTTP/1.0, or `Connection: close`: the connection cannot carry another request. */
  close: boolean;
  /** Bytes of the head, the blank line included: the body starts there. */
  length: number;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * The status line and headers of an HTTP/1.x response at the start of `buf` (its first `end` bytes);
 * undefined while the blank line has not arrived. A malformed or oversized head is a 'reset' failure of `url`
 * (worth asking again), as undici's parser errors are (fetch-error.ts toFetchError).
 */
export function parseResponseHead(url: string, buf: Buffer, end: number): ResponseHead | undefined {
  const stop = buf.subarray(0, end).indexOf(CRLFCRLF);
  if (stop < 0) {
    if (end >= MAX_HEAD_BYTES) throw new FetchError(url, 'reset', `response headers larger than ${MAX_HEAD_BYTES} bytes`);
    return undefined;
  }
  const lines = buf.toString('latin1', 0, stop).split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0]!);
  if (!m) throw new FetchError(url, 'reset', `not an HTTP/1.x response: ${JSON.stringify(lines[0]!.slice(0, 40))}`);
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new FetchError(url, 'reset', `malformed response header ${JSON.stringify(line.slice(0, 40))}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const connection = (headers.connection ?? '').toLowerCase();
  const close = m[1] === '0' ? !/\bkeep-alive\b/.test(connection) : /\bclose\b/.test(connection);
  return { status: Number(m[2]), headers, close, length: stop + CRLFCRLF.length };
}
