import { percentDecode, shown } from '../format/byte-string.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { UnavailableError, errorMessage } from '../format/errors.js';
import { ClientGone, ResponseWriter, sendRange } from './body.js';
import { notModified, preconditionFailed, rangeApplies } from './conditional.js';
import { listedImages, listingHtml, wantsJson } from './listing.js';
import { multipartPlan } from './multipart.js';
import { contentRange, parseRange, rangeLength, type ByteRange, type RangeRequest } from './range.js';
import type { ServedImage } from './served-image.js';

/** Counters for `status`. */
export interface ServeStats {
  requests: number;
  /** Responses by status code. */
  byStatus: Record<string, number>;
  /** Image bytes sent (body bytes of ranges, not multipart headers). */
  bytesSent: number;
  /** Responses cut off because a part could not be had (or the engine failed). */
  aborted: number;
  /** Responses whose client went away before the end. */
  clientsGone: number;
  /** Responses cut because the client took none of the body for --send-timeout (not counted as gone). */
  timedOut: number;
  /** Connections closed as they came, over the server's cap (connectionCap). */
  connectionsDropped: number;
}

export interface ServeContext {
  images: Map<string, ServedImage>;
  log: (line: string) => void;
  stats: ServeStats;
  /** How long a client may take none of a response's bytes before the response is cut (`--send-timeout`). */
  sendMs: number;
}

export const newStats = (): ServeStats => ({ requests: 0, byStatus: {}, bytesSent: 0, aborted: 0, clientsGone: 0, timedOut: 0, connectionsDropped: 0 });

/** One answer of `status` in the stats (`status` by status code). */
export function countStatus(ctx: ServeContext, status: number): void {
  ctx.stats.byStatus[status] = (ctx.stats.byStatus[status] ?? 0) + 1;
}

/** A short answer with a text body (errors, 304, 416, listings). */
function reply(ctx: ServeContext, res: ServerResponse, status: number, headers: Record<string, string>, body = '', head = false): void {
  countStatus(ctx, status);
  // Its length also when empty (412, 416): without it Node sent an empty GET answer chunked, unlike its HEAD, and closed
  // an HTTP/1.0 keep-alive connection after it. (A 304 has no body, and a length it states would be the image's.)
  const sized = status !== 304;
  res.writeHead(status, sized ? { 'Content-Length': String(Buffer.byteLength(body)), ...headers } : headers);
  res.end(head || !sized || body === '' ? undefined : body);
}

/** The headers every answer about an image carries. */
function imageHeaders(img: ServedImage): Record<string, string> {
  return {
    'Accept-Ranges': 'bytes',
    ETag: img.etag,
    'Last-Modified': img.lastModified.toUTCString(),
  };
}

/** `/` : the images, JSON for scripts, HTML for browsers. */
function serveListing(ctx: ServeContext, req: IncomingMessage, res: ServerResponse): void {
  const images = [...ctx.images.values()];
  const vary = { Vary: 'Accept' };
  if (wantsJson(req.headers)) {
    reply(ctx, res, 200, { 'Content-Type': 'application/json', ...vary }, `${JSON.stringify({ images: listedImages(images) }, null, 2)}\n`, req.method === 'HEAD');
  } else {
    reply(ctx, res, 200, { 'Content-Type': 'text/html; charset=utf-8', ...vary }, listingHtml(images), req.method === 'HEAD');
  }
}

/** What a GET/HEAD of an image is answered with, before any body byte. */
function rangeRequest(req: IncomingMessage, img: ServedImage): RangeRequest {
  if (!rangeApplies(req.headers, img)) return { kind: 'full' };
  return parseRange(req.headers.range, img.size);
}

/**
 * Streams the body; a failure after the status line went out can only be told by cutting the connection
 * (the client sees fewer bytes than promised, never wrong ones). Logged once per response; the part itself
 * is logged once by the engine.
 */
async function sendBody(ctx: ServeContext, req: IncomingMessage, res: ServerResponse, img: ServedImage, body: Array<string | ByteRange>): Promise<void> {
  const out = new ResponseWriter(res, ctx.sendMs);
  let at = 0;
  try {
    for (const piece of body) {
      if (typeof piece === 'string') await out.write(piece);
      else {
        at = piece.start;
        await sendRange(out, img.session.reader, piece.start, piece.end, (n) => (ctx.stats.bytesSent += n));
      }
    }
    res.end();
  } catch (err) {
    if (err instanceof ClientGone || out.closed) {
      if (out.stalled) ctx.stats.timedOut++;
      else ctx.stats.clientsGone++;
      if (out.stalled) ctx.log(`${req.method} /${img.name} (${req.headers.range ?? 'whole image'}): the client took none of the body for ${ctx.sendMs / 1000} s (--send-timeout): cut off`);
    } else {
      ctx.stats.aborted++;
      const why = err instanceof UnavailableError ? 'a part of it is not available' : errorMessage(err);
      ctx.log(`${req.method} /${img.name} (${req.headers.range ?? 'whole image'}): response cut off in the range from ${at}: ${why}`);
    }
    res.destroy();
  }
}

/** GET / HEAD of an image: validators, ranges, then the body. */
async function serveImage(ctx: ServeContext, req: IncomingMessage, res: ServerResponse, img: ServedImage): Promise<void> {
  const head = req.method === 'HEAD';
  const common = imageHeaders(img);
  if (preconditionFailed(req.headers, img)) return reply(ctx, res, 412, common);
  if (notModified(req.headers, img)) return reply(ctx, res, 304, common);
  const want = rangeRequest(req, img);
  if (want.kind === 'unsatisfiable') return reply(ctx, res, 416, { ...common, 'Content-Range': `bytes */${img.size}` });
  let status: number;
  let headers: Record<string, string>;
  let body: Array<string | ByteRange>;
  if (want.kind === 'full' || img.size === 0) {
    status = 200;
    headers = { ...common, 'Content-Type': img.contentType, 'Content-Length': String(img.size) };
    body = img.size > 0 ? [{ start: 0, end: img.size - 1 }] : [];
  } else if (want.ranges.length === 1) {
    const r = want.ranges[0]!;
    status = 206;
    headers = { ...common, 'Content-Type': img.contentType, 'Content-Length': String(rangeLength(r)), 'Content-Range': contentRange(r, img.size) };
    body = [r];
  } else {
    const plan = multipartPlan(want.ranges, img.size, img.contentType);
    status = 206;
    headers = { ...common, 'Content-Type': plan.contentType, 'Content-Length': String(plan.length) };
    body = [...plan.parts.flatMap((p) => [p.head, p.range]), plan.tail];
  }
  countStatus(ctx, status);
  res.writeHead(status, headers);
  if (head || body.length === 0) {
    res.end();
    return;
  }
  // The status line goes out now, not with the first bytes: a client waiting for a slow part sees the
  // answer start, and one whose first part is missing sees a cut body, not a connection closed unanswered.
  res.flushHeaders();
  await sendBody(ctx, req, res, img, body);
}

/**
 * The path of a request target without its query: the origin form (`/x.iso?a`), or the absolute form
 * (`http://host/x.iso`), which RFC 9112 §3.2.2 has servers accept (a proxy such as squid sends it to a parent it
 * does not know as an origin server). Undefined when an absolute target does not parse.
 */
function requestPath(target: string): string | undefined {
  if (!/^https?:\/\//i.test(target)) return target.split('?')[0]!;
  try {
    return new URL(target).pathname;
  } catch {
    return undefined;
  }
}

/** Routes one request: `/` lists, `/<name>` is an image, anything else 404; only GET and HEAD. */
export async function handleRequest(ctx: ServeContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  ctx.stats.requests++;
  if (req.method !== 'GET' && req.method !== 'HEAD') return reply(ctx, res, 405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }, 'only GET and HEAD\n');
  // More than one Host line: which host is meant is unknown, and a proxy in front may have read the other (RFC 9112 §3.2).
  if ((req.headersDistinct.host?.length ?? 0) > 1) return reply(ctx, res, 400, { 'Content-Type': 'text/plain' }, 'more than one Host header\n', req.method === 'HEAD');
  const pathname = requestPath(req.url ?? '/');
  if (pathname === undefined) return reply(ctx, res, 400, { 'Content-Type': 'text/plain' }, 'bad request target\n', req.method === 'HEAD');
  if (pathname === '/') return serveListing(ctx, req, res);
  let name: string;
  try {
    name = percentDecode(pathname.slice(1)); // `%E9` is the byte of a non-UTF-8 image name (byte-string.ts)
  } catch {
    return reply(ctx, res, 400, { 'Content-Type': 'text/plain' }, 'bad URL encoding\n', req.method === 'HEAD');
  }
  const img = ctx.images.get(name);
  if (!img) return reply(ctx, res, 404, { 'Content-Type': 'text/plain' }, `no image named ${JSON.stringify(shown(name))} here (see /)\n`, req.method === 'HEAD');
  await serveImage(ctx, req, res, img);
}
