import type { FileHandle } from 'node:fs/promises';
import type { Dispatcher, EnvHttpProxyAgent } from 'undici';
import { errorMessage } from '../format/errors.js';
import { BatchWriter } from './batch-writer.js';
import { PaceCheck, pumpBody } from './body-pump.js';
import { tooLarge, type BodyRules } from './body-rules.js';
import { FetchError, toFetchError } from './fetch-error.js';
import { rangeAnswer, rangeHeader, statusFailure, validatorOf, type RangeRequest } from './http-answer.js';
import { redirectedGet } from './redirected-get.js';
import { failedAtProxy, proxyFor, proxySettings, withoutPassword, type ProxySettings } from './proxy-env.js';
import { requestUrl } from './request-url.js';
import { FetchThreads, NeedsFullClient } from './raw-http/fetch-threads.js';
import type { ChecksumKind } from '../format/checksum.js';

export interface HttpOptions {
  /** Connect, response-headers and body-idle timeout, in milliseconds. */
  timeoutMs: number;
  /** Connections per origin. */
  connections: number;
  /** Threads that run plain-HTTP range requests off the main thread (raw-http/); 0: undici on the main thread only. */
  fetchThreads: number;
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
  /** The hash of the whole file as it arrived (asked with `hash`, given by the fetch threads only). */
  digest?: Buffer;
}

const ignore = (): void => undefined;

/** The lazily loaded part of the client: undici's request, and the agent made with it. */
interface Undici {
  agent: EnvHttpProxyAgent;
  request: typeof import('undici').request;
}

/** Stops reading a body (an error it emits then is taken by the listener every body gets in `get`). */
function discard(body: Dispatcher.ResponseData['body']): void {
  if (!body.destroyed) body.destroy();
}

/**
 * The HTTP layer: one undici dispatcher per process (proxies from HTTP_PROXY / HTTPS_PROXY / NO_PROXY,
 * redirects followed (redirected-get.ts), keep-alive, connect/headers/body-idle timeouts), ranged GETs streamed into files,
 * and every failure turned into a FetchError (fetch-error.ts).
 *
 * Owns the agent (its connections) and `closed`. Once `close` set `closed`, every failure of a request
 * still running is reported as 'aborted' (ours, not the mirror's), whatever undici says.
 */
export class HttpClient {
  /**
   * undici and the agent, loaded at the first request: a run that never fetches (parts local, a warm
   * cache) does not pay for importing undici (~0.2 s of start-up).
   */
  private undici: Promise<Undici> | undefined;
  private closed = false;
  /** The environment's proxies, once the first request read them (a failed connection to one is said to be its). */
  private proxies: ProxySettings | undefined;
  private readonly closer = new AbortController();
  private readonly threads: FetchThreads;

  constructor(readonly opts: HttpOptions) {
    this.threads = new FetchThreads(opts.fetchThreads);
  }

  private client(): Promise<Undici> {
    return (this.undici ??= Promise.all([import('undici'), import('./extra-ca.js')]).then(([{ EnvHttpProxyAgent, request }, { deferredCaContext }]) => {
      // Read at the first request (a command that never fetches does not care what they say); one that is no address
      // fails every request with the same line, naming the variable.
      const proxies = proxySettings();
      this.proxies = proxies;
      const t = this.opts.timeoutMs;
      // NODE_EXTRA_CA_CERTS when bin/jigdofs deferred it (extra-ca.ts): for the mirror's TLS, and a proxy's.
      const secureContext = deferredCaContext();
      const agent = new EnvHttpProxyAgent({
        ...proxies,
        connections: this.opts.connections,
        keepAliveTimeout: 10_000,
        headersTimeout: t,
        bodyTimeout: t,
        connect: { timeout: t, ...(secureContext && { secureContext }) },
        ...(secureContext && { requestTls: { secureContext }, proxyTls: { secureContext } }),
        // http:// through HTTP_PROXY as plain proxy requests, not CONNECT tunnels: a caching proxy (squid)
        // can then keep the parts for a whole fleet. https:// is tunnelled whatever this says.
        proxyTunnel: false,
      });
      return { agent, request };
    }));
  }

  private async get(url: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    let target: URL;
    try {
      target = requestUrl(url);
    } catch (err) {
      throw new FetchError(url, 'protocol', `bad URL: ${errorMessage(err)}`);
    }
    if (!/^https?:$/.test(target.protocol)) throw new FetchError(url, 'protocol', 'bad URL: not http(s)');
    let res: Dispatcher.ResponseData;
    this.assertOpen(url);
    const { agent, request } = await this.client().catch((err: unknown) => {
      throw new FetchError(url, 'refused', errorMessage(err)); // a bad proxy variable: no mirror is worth trying
    });
    this.assertOpen(url);
    try {
      const get = { request, dispatcher: agent, url, headers: { 'user-agent': 'jigdofs/0.1', ...headers }, timeoutMs: this.opts.timeoutMs, signal };
      res = await redirectedGet(get, target);
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
  private static checkStatus(url: string, res: Dispatcher.ResponseData): void {
    const failure = statusFailure(url, res.statusCode, res.headers);
    if (!failure) return;
    res.body.resume(); // read off (error pages are small) so that the connection can be reused
    throw failure;
  }

  /**
   * GETs bytes [start, end) of a file and writes them to `fh` at the same positions, calling `onData` with
   * the absolute position reached after each write. A server that ignores Range answers 200: accepted
   * when `start` is 0 or the request had `ifRange`, and then the whole file is written from byte 0 (`whole`).
   * Resolves when the range is
   * complete; otherwise throws a FetchError (bytes written before the error stay written and were
   * reported, so the caller can resume from there). `onHeaders` learns the file's size early, and the answer's
   * validator (for the `ifRange` of a request that resumes it; undici only). `hash`: the
   * caller would like the digest of a whole file fetched from byte 0 (given when a fetch thread ran it).
   *
   * Plain http without a proxy goes to the fetch threads (raw-http/); undici takes what they cannot (a redirect,
   * a chunked body: they say so before writing a byte), https, proxies, and bodies with `rules`.
   */
  async fetchRange(
    url: string,
    range: RangeRequest,
    fh: FileHandle,
    onData: (pos: number) => void,
    opts: { signal?: AbortSignal; onHeaders?: (info: { whole: boolean; total?: number; validator?: string }) => void; rules?: BodyRules; hash?: ChecksumKind } = {},
  ): Promise<RangeResult> {
    if (!opts.rules && range.ifRange === undefined && !range.fresh && this.threads.takes(url)) {
      try {
        return await this.threads.fetchRange(url, range, fh.fd, onData, { ...opts, timeoutMs: this.opts.timeoutMs });
      } catch (err) {
        if (!(err instanceof NeedsFullClient)) throw this.classify(url, err);
      }
    }
    const { start } = range;
    const t0 = performance.now();
    const value = rangeHeader(range);
    const headers: Record<string, string> = value === undefined ? {} : { range: value, ...(range.ifRange !== undefined && { 'if-range': range.ifRange }) };
    if (range.fresh) Object.assign(headers, { 'cache-control': 'no-cache', pragma: 'no-cache' }); // (pragma: HTTP/1.0 caches)
    const res = await this.get(url, headers, opts.signal);
    const ttfbMs = performance.now() - t0;
    try {
      HttpClient.checkStatus(url, res);
      const { whole, stated, stop } = rangeAnswer(url, res, range);
      const rules = opts.rules ?? {};
      if (stated !== undefined && stated > (rules.maxBytes ?? Infinity)) throw tooLarge(url, rules, stated);
      opts.onHeaders?.({ whole, total: stated, validator: validatorOf(res.headers) });
      const from = whole ? 0 : start;
      const pos = await pumpBody(url, res.body, new BatchWriter(url, fh, from, onData), stop, rules, this.opts.timeoutMs);
      if (stop !== Infinity && pos < stop) throw new FetchError(url, 'short', `body ended after ${pos - from} of ${stop - from} bytes`);
      return { end: pos, whole, total: stated, ttfbMs };
    } catch (err) {
      throw this.classify(url, err);
    } finally {
      discard(res.body);
    }
  }

  /** A whole small resource (.jigdo, [Include]) in memory; at most `maxBytes`. */
  async fetchBuffer(url: string, maxBytes: number): Promise<Buffer> {
    const res = await this.get(url, {});
    try {
      HttpClient.checkStatus(url, res);
      const chunks: Buffer[] = [];
      let n = 0;
      // A server that sends a byte now and then is never silent long enough for undici's body timeout: without a
      // pace, a trickled .jigdo held the command for good (templates and parts have theirs in pumpBody).
      const pace = new PaceCheck(url, this.opts.timeoutMs);
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        pace.add(chunk.length);
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

  /** The proxy requests for `url` go through (from the environment, as read at the first request), if any. */
  proxyOf(url: string): string | undefined {
    const proxy = this.proxies && proxyFor(this.proxies, url);
    return proxy ? withoutPassword(proxy) : undefined;
  }

  /** Aborted by close: a wait between retries ends at once (then assertOpen throws). */
  get closing(): AbortSignal {
    return this.closer.signal;
  }

  /**
   * Throws 'aborted' once close was called: a download's loop of mirrors and retry rounds asks before each try, so
   * that a shutdown is not retried for seconds (while the cache waits for that download to end: PartCache.endWrites).
   */
  assertOpen(url: string): void {
    if (this.closed) throw new FetchError(url, 'aborted', 'aborted: shutting down');
  }

  /** Cuts whatever still runs: its callers see 'aborted' (not a mirror's failure) and clean up after themselves. */
  async close(): Promise<void> {
    this.closed = true;
    this.closer.abort();
    await this.threads.close();
    if (this.undici) await this.undici.then(({ agent }) => agent.destroy()).catch(() => undefined);
  }

  private classify(url: string, err: unknown): FetchError {
    if (this.closed) return new FetchError(url, 'aborted', 'aborted: shutting down');
    const failure = toFetchError(url, err);
    const proxy = this.proxies && proxyFor(this.proxies, url);
    if (failure.kind !== 'connect' || !proxy || !failedAtProxy(proxy, url, err)) return failure;
    return new FetchError(url, 'connect', failure.message.replace(/^cannot connect/, `cannot connect to the proxy ${withoutPassword(proxy)}`));
  }
}
