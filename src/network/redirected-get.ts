import type { Dispatcher } from 'undici';
import { FetchError } from './fetch-error.js';
import { onAbort } from '../util/on-abort.js';
import { MAX_REDIRECTS, REDIRECT_STATUSES } from './http-answer.js';

type Request = typeof import('undici').request;

/**
 * A redirect's body is read off for its connection's sake up to this much, and for at most this long; then cut. Short:
 * meanwhile the connection is the pool's no more, and a request queued behind it spends its headers deadline.
 */
const REDIRECT_BODY_BYTES = 64 << 10;
const REDIRECT_BODY_MS = 1_000;

/** One GET: undici's request and dispatcher, the caller's URL (named in errors), its headers, the timeout, its signal. */
export interface GetRequest {
  request: Request;
  dispatcher: Dispatcher;
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * GETs `target`, following at most MAX_REDIRECTS redirects itself; each answer's headers must come within twice the
 * timeout (the connect, then the headers) whatever the server sends before them. A 3xx past the limit, or one without
 * a Location, is returned as it is (statusFailure names it).
 *
 * Not undici's redirect interceptor: it follows a redirect only once the 3xx body has ended, so a mirror sending an
 * endless one held the request for good while we downloaded GBs of it; and each `103 Early Hints` restarted undici's
 * headers timer, so a stream of them held it as well. The per-request timeouts are given too: behind a proxy, undici's
 * pools were made without the agent's, and a silent proxy took 300 s whatever --timeout said.
 */
export async function redirectedGet(get: GetRequest, target: URL): Promise<Dispatcher.ResponseData> {
  const visited = new Set([withoutFragment(target)]);
  for (let hop = 0; ; hop++) {
    const res = await answerInTime(get, target);
    const location = res.headers.location;
    // (An empty Location is none: undici did not follow it either, and statusFailure says so.)
    if (!REDIRECT_STATUSES.has(res.statusCode) || typeof location !== 'string' || location === '' || hop === MAX_REDIRECTS) return res;
    readOffInBackground(res.body);
    target = nextTarget(get.url, location, target);
    if (visited.has(withoutFragment(target))) throw new FetchError(get.url, 'protocol', 'redirects in a loop: a Location leads back to an address already visited');
    visited.add(withoutFragment(target));
  }
}

const withoutFragment = (u: URL): string => `${u.origin}${u.pathname}${u.search}`;

/** Where a redirect leads: an http(s) URL relative to the one that answered. */
function nextTarget(url: string, location: string, from: URL): URL {
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new FetchError(url, 'protocol', `redirected to a malformed address (${JSON.stringify(location.slice(0, 200))})`);
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new FetchError(url, 'protocol', 'redirected to an address that is not http(s)');
  return next;
}

/** One request whose headers must come in time; the caller's signal still cuts the answer's body afterwards. */
async function answerInTime(get: GetRequest, target: URL): Promise<Dispatcher.ResponseData> {
  const { request, dispatcher, headers, timeoutMs, signal } = get;
  const ctl = new AbortController();
  const unhook = onAbort(signal, () => ctl.abort(signal?.reason));
  let late = false;
  const deadline = setTimeout(() => {
    late = true;
    ctl.abort();
  }, 2 * timeoutMs);
  try {
    const res = await request(target.href, { method: 'GET', dispatcher, headers, signal: ctl.signal, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    res.body.once('close', unhook);
    return res;
  } catch (err) {
    unhook();
    if (late) throw new FetchError(get.url, 'timeout', 'no response headers in time');
    throw err;
  } finally {
    clearTimeout(deadline);
  }
}

/** Reads a redirect's body off without waiting for it (the connection can then be reused), or cuts it: long or slow. */
function readOffInBackground(body: Dispatcher.ResponseData['body']): void {
  let bytes = 0;
  const cut = (): void => {
    if (!body.destroyed) body.destroy();
  };
  const timer = setTimeout(cut, REDIRECT_BODY_MS);
  timer.unref();
  body.on('error', () => undefined);
  body.on('close', () => clearTimeout(timer));
  body.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > REDIRECT_BODY_BYTES) cut();
  });
}
