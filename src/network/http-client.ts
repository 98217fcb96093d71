import type { FileHandle } from 'node:fs/promises';
import { EnvHttpProxyAgent, interceptors, request, type Dispatcher } from 'undici';
import { errorMessage } from '../format/errors.js';

/**
 * The HTTP layer: one undici dispatcher per process (proxies from HTTP_PROXY / HTTPS_PROXY / NO_PROXY,
 * redirects followed, keep-alive, connect/headers/body-idle timeouts), ranged GETs streamed into files,
 * and every failure turned into a FetchError whose `kind` tells the caller whether to resume, try the
 * next mirror, or give up on this mirror for this file.
 */

export type FailureKind =
  /** 404 / 410: the mirror does not have the file. */
  | 'not-found'
  /** Any other unexpected status (4xx, 5xx, a 200 where a range was needed...). */
  | 'status'
  /** No connection (refused, DNS, unreachable). */
  | 'connect'
  /** Connect, headers or body-idle timeout (a stall). */
  | 'timeout'
  /** The body kept coming, but slower than MIN_BYTES_PER_SECOND over a whole timeout period (a trickle). */
  | 'slow'
  /** The connection was cut mid-body. */
  | 'reset'
  /** The body ended before the bytes we asked for (premature close or a short Content-Length). */
  | 'short'
  /** The mirror's file has another size than the part (Content-Range / Content-Length). */
  | 'wrong-size'
  /** The bytes did not match the checksum. */
  | 'mismatch'
  /** A malformed answer (bad Content-Range...) or an unusable URL. */
  | 'protocol'
  /** A 200 answer to a Range request from a byte other than 0: the server ignores Range. */
  | 'no-range'
  /** Not what we asked for: larger than we accept, or not the kind of file wanted (a template's header...). */
  | 'refused'
  /** Not asked at all: the mirror is down (it has not answered several requests in a row, see MirrorBoard). */
  | 'down'
  /** Cancelled by us. */
  | 'aborted'
  /** Storing what the mirror sent failed here (a full disk...): not the mirror's fault, no use trying others. */
  | 'local';

export class FetchError extends Error {
  override name = 'FetchError';
  constructor(
    readonly url: string,
    readonly kind: FailureKind,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }

  /** Retrying the same URL is pointless: it does not have this file, or has another one. */
  get permanent(): boolean {
    if (['not-found', 'wrong-size', 'mismatch', 'protocol', 'refused'].includes(this.kind)) return true;
    if (this.kind === 'status' && this.status !== undefined) return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
    return false;
  }
}

/** Classifies an error thrown by undici or by our stream handling. */
export function toFetchError(url: string, err: unknown): FetchError {
  if (err instanceof FetchError) return err;
  const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code;
  const msg = errorMessage(err);
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new FetchError(url, 'timeout', 'no response headers in time');
    case 'UND_ERR_BODY_TIMEOUT':
      return new FetchError(url, 'timeout', 'stalled: no data in time');
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new FetchError(url, 'timeout', 'connect timeout');
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return new FetchError(url, 'short', 'body shorter than its Content-Length');
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'EPIPE':
      return new FetchError(url, 'reset', `connection cut (${code === 'UND_ERR_SOCKET' ? msg : code})`);
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
      return new FetchError(url, 'connect', `cannot connect (${code})`);
    case 'UND_ERR_ABORTED':
    case 'ABORT_ERR':
      return new FetchError(url, 'aborted', 'aborted');
    case 'UND_ERR_INVALID_ARG':
      return invalidArgument(url, msg);
    case 'ERR_INVALID_URL': {
      // (our own URLs are checked before a request: this one came from a redirect's Location)
      const input = (err as { input?: unknown }).input;
      return new FetchError(url, 'protocol', `redirected to a malformed address${typeof input === 'string' ? ` (${JSON.stringify(input)})` : ''}`);
    }
    default:
      if ((err as Error)?.name === 'AbortError') return new FetchError(url, 'aborted', 'aborted');
      return new FetchError(url, 'reset', msg);
  }
}

/**
 * undici's InvalidArgumentError. Our own URLs are checked before a request (`get`), so what it rejects is
 * where a redirect led: say so in words, not in undici's (which speak of Pools and Agents).
 */
function invalidArgument(url: string, msg: string): FetchError {
  if (msg.startsWith('Redirect loop detected')) return new FetchError(url, 'protocol', 'redirects in a loop: a Location leads back to an address already visited');
  if (msg.startsWith('Invalid URL protocol')) return new FetchError(url, 'protocol', 'redirected to an address that is not http(s)');
  if (msg.startsWith('Invalid URL')) return new FetchError(url, 'protocol', 'redirected to a malformed address');
  return new FetchError(url, 'protocol', `request refused by the HTTP client: ${msg}`);
}

/** Redirects followed for one request; one more is 'too many redirects'. */
const MAX_REDIRECTS = 5;

/** Bytes of body gathered before one write to the file. */
const WRITE_BATCH = 512 * 1024;

const ignore = (): void => undefined;

/** Stops reading a body (an error it emits then is taken by the listener every body gets in `get`). */
function discard(body: Dispatcher.ResponseData['body']): void {
  if (!body.destroyed) body.destroy();
}

/** The 'refused' failure of a file larger than `rules.maxBytes`: its stated size, or undefined when the body passed it. */
function tooLarge(url: string, rules: BodyRules, stated?: number): FetchError {
  const max = rules.maxWhy ?? `${rules.maxBytes} bytes`;
  const message = stated === undefined ? `it goes on past ${max}: download stopped there` : `it has ${stated} bytes, more than ${max}: not downloaded`;
  return new FetchError(url, 'refused', message);
}

/** Checks a body's first bytes against `rules.magic` as they arrive. */
class HeadCheck {
  private got = Buffer.alloc(0);
  private done = false;

  constructor(
    private readonly url: string,
    private readonly rules: BodyRules,
  ) {}

  add(chunk: Buffer): void {
    if (this.done) return;
    const magic = this.rules.magic!;
    this.got = Buffer.concat([this.got, chunk.subarray(0, magic.length - this.got.length)]);
    if (this.got.length >= magic.length) this.check();
  }

  /** The body ended: a file shorter than the magic is not the file wanted either. */
  end(): void {
    if (!this.done) this.check();
  }

  private check(): void {
    this.done = true;
    if (this.got.equals(this.rules.magic!)) return;
    const seen = JSON.stringify(this.got.toString('latin1').replace(/[^\x20-\x7e]/g, '.'));
    throw new FetchError(this.url, 'refused', `not ${this.rules.magicWhat ?? 'the file wanted'} (it starts with ${seen})`);
  }
}

/**
 * Body chunks are small (~16-64 KiB): they are written to the file in batches of WRITE_BATCH, with one writev
 * and no concatenation into a new buffer per batch. `pos` is where the written bytes end, `end` where the
 * added ones do.
 */
class BatchWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

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
    if (this.pendingBytes >= WRITE_BATCH) await this.flush();
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
        for (let o = 0; o < rest.length; ) o += (await this.fh.write(rest, o, rest.length - o, at + done + o)).bytesWritten;
      }
    } catch (err) {
      throw new FetchError(this.url, 'local', `cannot store what it sent: ${errorMessage(err)}`);
    }
    this.pos = at + n;
    this.onData(this.pos);
  }
}

/**
 * The slowest body we wait for: undici's body timeout only fires on silence, so a mirror sending a byte
 * now and then would hold a part forever. Averaged over a whole timeout period.
 */
export const MIN_BYTES_PER_SECOND = 1024;

export interface HttpOptions {
  /** Connect, response-headers and body-idle timeout, in milliseconds. */
  timeoutMs: number;
  /** Connections per origin. */
  connections: number;
}

/** Percent-encodes what must be (spaces, non-ASCII) and nothing else: jigdo strings are concatenated raw (spec §5.5). */
export function requestUrl(url: string): string {
  return new URL(url).href;
}

export interface RangeResult {
  /** Absolute position after the last byte written. */
  end: number;
  /** The server ignored Range and sent the whole file from byte 0 (everything up to `end` was written). */
  whole: boolean;
  /** The file's size as the server stated it, when it did. */
  total?: number;
  /** Time to response headers, ms. */
  ttfbMs: number;
}

export interface RangeRequest {
  start: number;
  /** Exclusive; undefined: to the end of the file. */
  end?: number;
  /** The expected size of the whole file, when known: another size is a 'wrong-size' failure. */
  total?: number;
}

/** What a file of unknown size must be like (a 'refused' failure otherwise), checked while it comes. */
export interface BodyRules {
  /** Most bytes the file may have: a larger stated size is refused before the body, a longer body at the limit. */
  maxBytes?: number;
  /** Says what the limit is, for the message: "it has N bytes, more than <maxWhy>". */
  maxWhy?: string;
  /** The file's first bytes must be these: refused as soon as they are not (so garbage costs kilobytes). */
  magic?: Buffer;
  /** Says what the file should be, for the message: "not <what> (...)". */
  magicWhat?: string;
}
export class HttpClient {
  private readonly dispatcher: Dispatcher;
  private readonly agent: EnvHttpProxyAgent;
  private closed = false;

  constructor(readonly opts: HttpOptions) {
    const t = opts.timeoutMs;
    this.agent = new EnvHttpProxyAgent({
      connections: opts.connections,
      keepAliveTimeout: 10_000,
      headersTimeout: t,
      bodyTimeout: t,
      connect: { timeout: t },
      // http:// through HTTP_PROXY as plain proxy requests, not CONNECT tunnels: a caching proxy (squid)
      // can then keep the parts for a whole fleet. https:// is tunnelled whatever this says.
      proxyTunnel: false,
    });
    this.dispatcher = this.agent.compose(interceptors.redirect({ maxRedirections: MAX_REDIRECTS }));
  }

  private async get(url: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    let target: string;
    try {
      target = requestUrl(url);
    } catch (err) {
      throw new FetchError(url, 'protocol', `bad URL: ${errorMessage(err)}`);
    }
    if (!/^https?:$/.test(new URL(target).protocol)) throw new FetchError(url, 'protocol', 'bad URL: not http(s)');
    let res: Dispatcher.ResponseData;
    try {
      res = await request(target, { method: 'GET', dispatcher: this.dispatcher, headers: { 'user-agent': 'jigdofs/0.1', ...headers }, signal });
    } catch (err) {
      throw this.classify(url, err);
    }
    // An undici body destroyed before it was read to its end (we give up on a wrong answer, an abort signal
    // cuts a sibling range, the agent closes) emits 'error' (RequestAbortedError) a moment later, and with no
    // listener that is an uncaught exception: the process dies. Every body gets one from the start; whoever
    // reads it still sees its errors (the async iterator listens for them itself).
    res.body.on('error', ignore);
    return res;
  }

  /** Throws a FetchError for a non-2xx answer (after discarding its body). */
  private static async checkStatus(url: string, res: Dispatcher.ResponseData): Promise<void> {
    if (res.statusCode >= 200 && res.statusCode < 300) return;
    res.body.resume(); // read off (error pages are small) so that the connection can be reused
    const status = res.statusCode;
    const kind = status === 404 || status === 410 ? 'not-found' : 'status';
    const location = res.headers.location;
    // A redirect that reaches us was not followed: one too many, or one that leads nowhere.
    if (status >= 300 && status < 400 && status !== 304) {
      const why = location ? `too many redirects (more than ${MAX_REDIRECTS}; the next one to ${String(location)})` : 'a redirect without a Location';
      throw new FetchError(url, 'protocol', `HTTP ${status}: ${why}`, status);
    }
    throw new FetchError(url, kind, `HTTP ${status}`, status);
  }

  /**
   * GETs bytes [start, end) of a file and writes them to `fh` at the same positions, calling `onData` with
   * the absolute position reached after each write. A server that ignores Range answers 200: accepted
   * when `start` is 0, and then the whole file is written (`whole`). Resolves when the range is
   * complete; otherwise throws a FetchError (bytes written before the error stay written and were
   * reported, so the caller can resume from there). `onHeaders` learns the file's size early.
   */
  async fetchRange(
    url: string,
    range: RangeRequest,
    fh: FileHandle,
    onData: (pos: number) => void,
    opts: { signal?: AbortSignal; onHeaders?: (info: { whole: boolean; total?: number }) => void; rules?: BodyRules } = {},
  ): Promise<RangeResult> {
    const { start, total } = range;
    const t0 = performance.now();
    const full = start === 0 && (range.end === undefined || range.end === total);
    const header: Record<string, string> = full ? {} : { range: `bytes=${start}-${range.end === undefined ? '' : range.end - 1}` };
    const res = await this.get(url, header, opts.signal);
    const ttfbMs = performance.now() - t0;
    try {
      await HttpClient.checkStatus(url, res);
      const { whole, stated } = HttpClient.rangeAnswer(url, res, range);
      const rules = opts.rules ?? {};
      if (stated !== undefined && stated > (rules.maxBytes ?? Infinity)) throw tooLarge(url, rules, stated);
      opts.onHeaders?.({ whole, total: stated });
      const stop = whole ? (stated ?? total ?? Infinity) : (range.end ?? stated ?? Infinity);
      const pos = await this.pump(url, res.body, new BatchWriter(url, fh, start, onData), stop, rules);
      if (stop !== Infinity && pos < stop) throw new FetchError(url, 'short', `body ended after ${pos - start} of ${stop - start} bytes`);
      return { end: pos, whole, total: stated, ttfbMs };
    } catch (err) {
      throw this.classify(url, err);
    } finally {
      discard(res.body);
    }
  }

  /** What a 2xx answer to a range request holds: the whole file or the range asked for, and the file's size. */
  private static rangeAnswer(url: string, res: Dispatcher.ResponseData, range: RangeRequest): { whole: boolean; stated?: number } {
    const { start, total } = range;
    let whole = false;
    let stated: number | undefined;
    if (res.statusCode === 206) {
      const text = String(res.headers['content-range'] ?? '');
      const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(text);
      if (!cr) throw new FetchError(url, 'protocol', `bad Content-Range "${text}"`);
      if (cr[3] !== '*') stated = Number(cr[3]);
      if (Number(cr[1]) !== start) throw new FetchError(url, 'protocol', `asked for bytes from ${start}, got Content-Range ${text}`);
    } else {
      if (start !== 0) throw new FetchError(url, 'no-range', `HTTP ${res.statusCode} to a Range request: the server ignores Range`, res.statusCode);
      const len = res.headers['content-length'];
      if (len !== undefined) stated = Number(len);
      whole = true;
    }
    if (total !== undefined && stated !== undefined && stated !== total) {
      throw new FetchError(url, 'wrong-size', `the file there has ${stated} bytes, expected ${total}`);
    }
    return { whole, stated };
  }

  /**
   * Writes the body through `out` up to position `stop` (what comes after is not read); returns the position
   * reached. Fails a body slower than MIN_BYTES_PER_SECOND over a whole timeout ('slow'), and one that breaks
   * `rules` ('refused').
   */
  private async pump(url: string, body: Dispatcher.ResponseData['body'], out: BatchWriter, stop: number, rules: BodyRules): Promise<number> {
    const head = rules.magic && out.pos === 0 ? new HeadCheck(url, rules) : undefined;
    const max = rules.maxBytes ?? Infinity;
    let windowStart = performance.now();
    let windowBytes = 0;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        windowBytes += chunk.length;
        const elapsed = performance.now() - windowStart;
        if (elapsed >= this.opts.timeoutMs) {
          if ((windowBytes * 1000) / elapsed < MIN_BYTES_PER_SECOND) {
            throw new FetchError(url, 'slow', `too slow: ${windowBytes} bytes in ${(elapsed / 1000).toFixed(0)} s`);
          }
          windowStart += elapsed;
          windowBytes = 0;
        }
        head?.add(chunk);
        const room = stop - out.end;
        const data = chunk.length > room ? chunk.subarray(0, room) : chunk;
        if (out.end + data.length > max) throw tooLarge(url, rules);
        await out.add(data);
        if (out.end >= stop) break;
      }
      head?.end();
    } finally {
      await out.flush(); // what arrived before an error is written too: a resume starts after it
    }
    return out.pos;
  }

  /** A whole small resource (.jigdo, [Include]) in memory; at most `maxBytes`. */
  async fetchBuffer(url: string, maxBytes: number): Promise<Buffer> {
    const res = await this.get(url, {});
    try {
      await HttpClient.checkStatus(url, res);
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        n += chunk.length;
        if (n > maxBytes) throw new FetchError(url, 'protocol', `larger than ${maxBytes} bytes: not a .jigdo file?`);
        chunks.push(chunk);
      }
      return Buffer.concat(chunks);
    } catch (err) {
      throw this.classify(url, err);
    } finally {
      discard(res.body);
    }
  }

  /** Cuts whatever still runs: its callers see 'aborted' (not a mirror's failure) and clean up after themselves. */
  async close(): Promise<void> {
    this.closed = true;
    await this.agent.destroy().catch(() => undefined);
  }

  private classify(url: string, err: unknown): FetchError {
    return this.closed ? new FetchError(url, 'aborted', 'aborted: shutting down') : toFetchError(url, err);
  }
}
