/**
 * A real HTTP mirror for tests and benchmarks: a static file server on loopback with Range support and
 * runtime-switchable faults (status codes, resets, stalls, corruption, short bodies, delays, captive-portal pages,
 * silent hosts, endless bodies).
 *
 * Why not `python3 -m http.server`: it ignores Range, and we need to script misbehaviour per request.
 * Only node:http is used; the server listens on 127.0.0.1 port 0 because fixed ports are often taken.
 *
 * Standalone (benchmarks):
 *   node --import tsx test/helpers/mirror-server.ts --root DIR [--port N] [--latency MS] [--log]
 * prints its URL as the first stdout line and serves until SIGTERM/SIGINT.
 */
import { createReadStream, realpathSync, type Stats } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeBytes, fsPath, percentDecode } from '../../src/format/byte-string.js';

// ---------------------------------------------------------------------------------------------------------------
// Public types

/** `times`: apply to the next N matching requests only, then the fault clears itself. Omitted: until replaced. */
interface FaultBase {
  times?: number;
}

/**
 * What to do wrong. Body faults (reset, stall, corrupt, short, truncate) only apply to GET requests answered
 * with 200/206, so a client's HEAD or a 404 does not use up a `times` budget meant for a body.
 * `status` and `delay` apply to every request that matches, HEAD included, whether or not the file exists.
 */
export type Fault =
  /** Answer with this status instead of serving the file (optional extra headers, e.g. Retry-After). */
  | (FaultBase & { kind: 'status'; code: number; headers?: Record<string, string> })
  /** Send the headers and `afterBytes` body bytes, then abort the TCP connection with an RST. */
  | (FaultBase & { kind: 'reset'; afterBytes: number })
  /** Send the headers and `afterBytes` body bytes, then go silent forever (until close()). */
  | (FaultBase & { kind: 'stall'; afterBytes: number })
  /** Send `afterBytes` body bytes at full speed, then the rest one byte every `everyMs` (never silent for long). */
  | (FaultBase & { kind: 'trickle'; afterBytes: number; everyMs: number })
  /** Flip (XOR 0xff) `length` (default 1) body bytes from body offset `at` (default: the middle). */
  | (FaultBase & { kind: 'corrupt'; at?: number; length?: number })
  /** Advertise the full Content-Length but send only `bytes`, then close the connection cleanly (FIN). */
  | (FaultBase & { kind: 'short'; bytes: number })
  /** Content-Length itself is `bytes` (a well-formed but truncated response; Content-Range is not adjusted). */
  | (FaultBase & { kind: 'truncate'; bytes: number })
  /** Extra latency before the headers (on top of `latencyMs`). */
  | (FaultBase & { kind: 'delay'; ms: number })
  /**
   * Answer 200 with a short HTML page (`bytes` long, default 60, with its Content-Length) whatever was asked,
   * Range ignored, file or not: what captive portals and maintenance pages do. Requests for the file from
   * byte 0 (no Range, or one from 0) wait `fromZeroDelayMs` first, so that the answers to ranges of later
   * bytes arrive before them (a client fetching parallel ranges sees its "no Range support" answers first).
   */
  | (FaultBase & { kind: 'page'; bytes?: number; fromZeroDelayMs?: number })
  /** Accept the connection, read the request, never answer (until close()): a dead host behind a live socket. */
  | (FaultBase & { kind: 'hang' })
  /**
   * Answer 200 with a body that does not end (until the client leaves or close()): `prefix`, then 'x' bytes.
   * Chunked, unless `contentLength` is given: then that is claimed and sent (however large).
   */
  | (FaultBase & { kind: 'endless'; prefix?: string; contentLength?: number })
  /**
   * Answer `code` (default 302) with `Location: to` (given the decoded request path, when a function); with
   * `endlessBody`, a body after it that does not end (chunked 'x' bytes at full speed).
   */
  | (FaultBase & { kind: 'redirect'; to: string | ((path: string) => string); code?: number; endlessBody?: boolean })
  /** Send a `103 Early Hints` answer every `everyMs`, and never a final one (until close()). */
  | (FaultBase & { kind: 'hints'; everyMs: number })
  /** Send `count` interim answers nobody asked for (`100 Continue`), then the usual answer. */
  | (FaultBase & { kind: 'continue'; count: number })
  /**
   * Answer a Range request with at most `bytes` bytes of it, and a Content-Range that does not state the file's size
   * (`bytes 100-199/*`); past the file's end, 416 as usual.
   */
  | (FaultBase & { kind: 'unsized'; bytes: number });

export type FaultKind = Fault['kind'];

/**
 * Which requests a fault applies to: an exact URL path (matched against the decoded path and the raw path,
 * without the query), a RegExp or predicate tested on the decoded path, or '*' for every request.
 * Precedence when several match: exact path, then RegExp/predicate (most recently set first), then '*'.
 */
export type FaultMatch = string | RegExp | ((path: string) => boolean);

export interface RequestRecord {
  method: string;
  /** Decoded URL path, without the query. */
  path: string;
  /** The Range header as received, when there was one. */
  range?: string;
  /** The Cache-Control header as received, when there was one. */
  cacheControl?: string;
  /** 0 until the headers are sent (e.g. while waiting out latency, or when the client left before that). */
  status: number;
  /** Body bytes written so far (updated live while streaming). */
  bytes: number;
  /** The fault applied to this request, if any. */
  fault?: FaultKind;
}

export interface MirrorOptions {
  /** Directory to serve. Nothing outside it is ever served, symlinks included. */
  root: string;
  /** Latency before every response's headers, in milliseconds. */
  latencyMs?: number;
  /** 0 (default) picks a free port; the standalone runner may pin one. */
  port?: number;
  /** Called once per request when its connection is done with it (finished, aborted, reset or closed). */
  onResponse?: (record: RequestRecord) => void;
  /** Serve https with this key and certificate (PEM) instead of http. */
  tls?: { key: string; cert: string };
}

export interface Mirror {
  /** `http://127.0.0.1:PORT/` (`https://` with `tls`) */
  readonly url: string;
  readonly port: number;
  /** The real path of the served directory. */
  readonly root: string;
  /** Can be changed at run time. */
  latencyMs: number;
  /** One entry per request, in arrival order; entries are updated in place while the response runs. */
  readonly requests: RequestRecord[];
  /** Body bytes written across all requests since start or reset(). */
  readonly bytesSent: number;
  /** Set (or with `null`, clear) the fault for `match`. Setting the same match again replaces it. */
  fault(match: FaultMatch, fault: Fault | null): void;
  clearFaults(): void;
  /** Clear the request log and counters (faults stay). */
  reset(): void;
  /** Stop listening and destroy every open socket, stalled ones included. Idempotent. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Entry point

export async function startMirror(opts: MirrorOptions): Promise<Mirror> {
  const root = await realpath(opts.root);
  if (!(await stat(root)).isDirectory()) throw new Error(`mirror root is not a directory: ${root}`);
  const mirror = new MirrorServer(root, opts.latencyMs ?? 0, opts.onResponse, opts.tls);
  await mirror.listen(opts.port ?? 0);
  return mirror;
}

// ---------------------------------------------------------------------------------------------------------------
// Fault rules

interface FaultRule {
  match: FaultMatch;
  fault: Fault;
  /** Requests left before the rule clears itself; Infinity when `times` was not given. */
  remaining: number;
}

/** Faults that only make sense when a body is being streamed. */
const BODY_FAULTS: ReadonlySet<FaultKind> = new Set(['reset', 'stall', 'trickle', 'corrupt', 'short', 'truncate']);

function sameMatch(a: FaultMatch, b: FaultMatch): boolean {
  if (a instanceof RegExp && b instanceof RegExp) return a.source === b.source && a.flags === b.flags;
  return a === b;
}

/** Lower is tried first: exact paths beat patterns, patterns beat the global '*'. */
function matchRank(match: FaultMatch): number {
  if (match === '*') return 2;
  return typeof match === 'string' ? 0 : 1;
}

function ruleMatches(rule: FaultRule, decodedPath: string, rawPath: string): boolean {
  const { match } = rule;
  if (match === '*') return true;
  if (typeof match === 'string') return match === decodedPath || match === rawPath;
  if (match instanceof RegExp) {
    match.lastIndex = 0; // a /g or /y RegExp is stateful; make every test start fresh
    return match.test(decodedPath);
  }
  return match(decodedPath);
}

function validateFault(fault: Fault): void {
  const nonNegative = (name: string, v: number | undefined): void => {
    if (v !== undefined && !(Number.isInteger(v) && v >= 0)) {
      throw new RangeError(`fault ${fault.kind}: ${name} must be a non-negative integer, got ${v}`);
    }
  };
  if (fault.times !== undefined && !(Number.isInteger(fault.times) && fault.times > 0)) {
    throw new RangeError(`fault ${fault.kind}: times must be a positive integer, got ${fault.times}`);
  }
  switch (fault.kind) {
    case 'status':
      if (!(Number.isInteger(fault.code) && fault.code >= 100 && fault.code <= 599)) {
        throw new RangeError(`fault status: bad code ${fault.code}`);
      }
      return;
    case 'reset':
    case 'stall':
      return nonNegative('afterBytes', fault.afterBytes);
    case 'trickle':
      nonNegative('afterBytes', fault.afterBytes);
      return nonNegative('everyMs', fault.everyMs);
    case 'corrupt':
      nonNegative('at', fault.at);
      return nonNegative('length', fault.length);
    case 'short':
    case 'truncate':
      return nonNegative('bytes', fault.bytes);
    case 'delay':
      return nonNegative('ms', fault.ms);
    case 'page':
      nonNegative('bytes', fault.bytes);
      return nonNegative('fromZeroDelayMs', fault.fromZeroDelayMs);
    case 'hang':
      return;
    case 'endless':
      return nonNegative('contentLength', fault.contentLength);
    case 'redirect':
      if (fault.code !== undefined && !(fault.code >= 300 && fault.code <= 399)) throw new RangeError(`fault redirect: bad code ${fault.code}`);
      return;
    case 'hints':
      return nonNegative('everyMs', fault.everyMs);
    case 'continue':
      return nonNegative('count', fault.count);
    case 'unsized':
      if (!(fault.bytes >= 1)) throw new RangeError(`fault unsized: bytes must be at least 1, got ${fault.bytes}`);
      return;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Request-target and Range parsing

type Target = { ok: true; decoded: string; raw: string } | { ok: false; status: 400 };

/**
 * Decode the path ourselves from the raw request target: WHATWG URL parsing would silently resolve `..` and
 * `%2e%2e` segments, hiding exactly the traversal attempts the root check must see. Percent-escapes are
 * bytes (`caf%E9.bin` is the file named `caf\xe9`, as Apache and nginx serve it): bytes that are not UTF-8
 * are kept as escaped bytes (src/format/byte-string.ts) and files are opened by their exact names.
 */
function parseTarget(reqUrl: string | undefined): Target {
  const raw = (reqUrl ?? '').split(/[?#]/, 1)[0] ?? '';
  if (!raw.startsWith('/')) return { ok: false, status: 400 };
  try {
    const decoded = percentDecode(raw);
    if (decoded.includes('\0')) return { ok: false, status: 400 };
    return { ok: true, decoded, raw };
  } catch {
    return { ok: false, status: 400 }; // malformed percent-encoding
  }
}

function isInside(root: string, candidate: string): boolean {
  return candidate === root || candidate.startsWith(root + path.sep);
}

type RangeResult = { kind: 'full' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * Single byte ranges only: `a-b`, `a-`, `-n`. Per RFC 9110 a syntactically invalid Range, another unit or a
 * multi-range request is answered with the whole file (200), which clients must accept.
 */
function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'full' };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return { kind: 'full' };
  const [, first = '', last = ''] = m;
  if (first === '' && last === '') return { kind: 'full' };
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return { kind: 'full' }; // invalid range-spec: ignore the header
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  return { kind: 'partial', start, end };
}

function etagOf(st: Stats): string {
  return `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
}

/** If-Range: honour Range only when the validator still matches, so resuming clients never splice two versions. */
function ifRangeHolds(ifRange: string | undefined, st: Stats): boolean {
  if (ifRange === undefined) return true;
  if (ifRange.startsWith('"')) return ifRange === etagOf(st);
  if (ifRange.startsWith('W/')) return false; // weak validators never match for ranges
  const date = Date.parse(ifRange);
  return !Number.isNaN(date) && date === Math.floor(st.mtimeMs / 1000) * 1000;
}

// ---------------------------------------------------------------------------------------------------------------
// Body plan: how much to send and how to finish, derived from the fault

type Ending = 'end' | 'reset' | 'stall';

interface BodyPlan {
  /** Value of the Content-Length header. */
  contentLength: number;
  /** Body bytes actually sent. */
  send: number;
  ending: Ending;
  /** Close the connection after the response, so a short body is seen as a premature close. */
  closeConnection: boolean;
  /** Body offsets [from, to) to XOR with 0xff. */
  flip?: { from: number; to: number };
  /** From this body offset on, one byte every `everyMs`. */
  trickle?: { from: number; everyMs: number };
}

function planBody(length: number, fault: Fault | undefined): BodyPlan {
  const plan: BodyPlan = { contentLength: length, send: length, ending: 'end', closeConnection: false };
  switch (fault?.kind) {
    case 'reset':
      return { ...plan, send: Math.min(fault.afterBytes, length), ending: 'reset' };
    case 'stall':
      return { ...plan, send: Math.min(fault.afterBytes, length), ending: 'stall' };
    case 'trickle':
      return { ...plan, trickle: { from: Math.min(fault.afterBytes, length), everyMs: fault.everyMs } };
    case 'short':
      return { ...plan, send: Math.min(fault.bytes, length), closeConnection: true };
    case 'truncate': {
      const n = Math.min(fault.bytes, length);
      return { ...plan, contentLength: n, send: n };
    }
    case 'corrupt': {
      if (length === 0) return plan;
      // Clamp so the fault always bites: a corrupt fault that silently changes nothing would make tests lie.
      const from = Math.min(fault.at ?? Math.floor(length / 2), length - 1);
      return { ...plan, flip: { from, to: Math.min(length, from + (fault.length ?? 1)) } };
    }
    default:
      return plan;
  }
}

function flipBytes(chunk: Buffer, chunkOffset: number, flip: { from: number; to: number }): Buffer {
  const from = Math.max(flip.from, chunkOffset);
  const to = Math.min(flip.to, chunkOffset + chunk.length);
  if (from >= to) return chunk;
  const out = Buffer.from(chunk); // copy: never mutate a buffer we did not allocate
  for (let i = from; i < to; i++) out[i - chunkOffset] = out[i - chunkOffset]! ^ 0xff;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Small async helpers

/** Resolves on 'drain' or when the response dies, so a vanished client never leaves the pump waiting. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * Resolves once everything written so far has been handed to the kernel: a zero-length socket write completes
 * only after the writes queued before it. Needed before an RST, which discards unsent data.
 */
function flushed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const socket = res.socket;
    if (!socket || socket.destroyed) return resolve();
    socket.write(Buffer.alloc(0), () => resolve());
  });
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found' };

// ---------------------------------------------------------------------------------------------------------------
// The server

class MirrorServer implements Mirror {
  readonly requests: RequestRecord[] = [];
  latencyMs: number;
  private sent = 0;
  private rules: FaultRule[] = [];
  private readonly server: Server | HttpsServer;
  private readonly sleepers = new Set<() => void>();
  private closing: Promise<void> | undefined;
  private boundPort = 0;

  constructor(
    readonly root: string,
    latencyMs: number,
    private readonly onResponse?: (record: RequestRecord) => void,
    private readonly tls?: { key: string; cert: string },
  ) {
    this.latencyMs = latencyMs;
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.handle(req, res).catch((err: unknown) => this.fail(res, err));
    };
    this.server = tls ? createHttpsServer(tls, handler) : createServer(handler);
    // Benchmarks open many parallel connections; nothing here should throttle them.
    this.server.maxConnections = Infinity;
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.boundPort}/`;
  }

  get bytesSent(): number {
    return this.sent;
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        this.boundPort = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  fault(match: FaultMatch, fault: Fault | null): void {
    this.rules = this.rules.filter((r) => !sameMatch(r.match, match));
    if (fault === null) return;
    validateFault(fault);
    this.rules.push({ match, fault: { ...fault }, remaining: fault.times ?? Infinity });
  }

  clearFaults(): void {
    this.rules = [];
  }

  reset(): void {
    this.requests.length = 0;
    this.sent = 0;
  }

  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      this.server.close(() => resolve());
      // server.close() alone waits for keep-alive and stalled sockets; tests must never hang on them.
      this.server.closeAllConnections();
      for (const wake of this.sleepers) wake();
    });
    return this.closing;
  }

  // --- request handling --------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.on('error', () => {}); // a client that vanishes mid-write must not crash the test process
    const method = req.method ?? 'GET';
    const target = parseTarget(req.url);
    const record: RequestRecord = { method, path: target.ok ? target.decoded : (req.url ?? ''), status: 0, bytes: 0 };
    if (req.headers.range !== undefined) record.range = req.headers.range;
    if (req.headers['cache-control'] !== undefined) record.cacheControl = req.headers['cache-control'];
    this.requests.push(record);
    if (this.onResponse) res.once('close', () => this.onResponse?.(record));

    await this.sleep(this.latencyMs);
    if (this.gone(res)) return;

    if (!target.ok) return this.sendError(res, record, target.status);
    if (method !== 'GET' && method !== 'HEAD') {
      return this.sendText(res, record, 405, 'Method Not Allowed', { Allow: 'GET, HEAD' });
    }
    const file = await this.resolveFile(target.decoded);
    if (file.status === 403) return this.sendError(res, record, 403); // traversal: no fault can unlock it
    const fault = this.takeFault(target.decoded, target.raw, method === 'GET' && file.status === 200);
    if (fault) record.fault = fault.kind;

    if (fault?.kind === 'delay') {
      await this.sleep(fault.ms);
      if (this.gone(res)) return;
    }
    if (fault?.kind === 'status') {
      return this.sendText(res, record, fault.code, `fault ${fault.code}`, fault.headers ?? {});
    }
    if (fault?.kind === 'page') return this.sendPage(req, res, record, fault);
    if (fault?.kind === 'hang') return this.sleep(Infinity);
    if (fault?.kind === 'endless') return this.sendEndless(res, record, fault);
    if (fault?.kind === 'hints') return this.sendHints(res, fault.everyMs);
    if (fault?.kind === 'redirect') {
      const to = typeof fault.to === 'string' ? fault.to : fault.to(target.decoded);
      if (fault.endlessBody) return this.sendEndless(res, record, {}, fault.code ?? 302, { Location: to });
      return this.sendText(res, record, fault.code ?? 302, `see ${to}`, { Location: to });
    }
    if (fault?.kind === 'continue') for (let i = 0; i < fault.count; i++) res.writeContinue();
    if (file.status !== 200) return this.sendError(res, record, file.status);
    return this.serveFile(req, res, record, file, fault);
  }

  /** Map a decoded URL path to a regular file under root, following symlinks only if they stay inside. */
  private async resolveFile(
    decoded: string,
  ): Promise<{ status: 200; file: string; stats: Stats } | { status: 403 | 404 }> {
    const lexical = path.resolve(this.root, '.' + decoded);
    if (!isInside(this.root, lexical)) return { status: 403 };
    let real: string;
    try {
      real = decodeBytes(await realpath(fsPath(lexical), { encoding: 'buffer' }));
    } catch {
      return { status: 404 };
    }
    if (!isInside(this.root, real)) return { status: 403 };
    const stats = await stat(fsPath(real)).catch(() => undefined);
    if (!stats?.isFile()) return { status: 404 };
    return { status: 200, file: real, stats };
  }

  /**
   * Pick the applicable fault and consume one use of it right away (synchronously), so concurrent requests
   * cannot both take the last use of a `times` budget.
   */
  private takeFault(decoded: string, raw: string, hasBody: boolean): Fault | undefined {
    const candidates = this.rules
      .map((rule, index) => ({ rule, index }))
      .filter(({ rule }) => hasBody || !BODY_FAULTS.has(rule.fault.kind))
      .filter(({ rule }) => ruleMatches(rule, decoded, raw))
      .sort((a, b) => matchRank(a.rule.match) - matchRank(b.rule.match) || b.index - a.index);
    const chosen = candidates[0]?.rule;
    if (!chosen) return undefined;
    chosen.remaining -= 1;
    if (chosen.remaining <= 0) this.rules = this.rules.filter((r) => r !== chosen);
    return chosen.fault;
  }

  private async serveFile(
    req: IncomingMessage,
    res: ServerResponse,
    record: RequestRecord,
    file: { file: string; stats: Stats },
    fault: Fault | undefined,
  ): Promise<void> {
    const { stats } = file;
    const size = stats.size;
    const headers: Record<string, string> = {
      'Accept-Ranges': 'bytes',
      'Content-Type': 'application/octet-stream',
      'Last-Modified': stats.mtime.toUTCString(),
      ETag: etagOf(stats),
    };
    const ifRange = req.headers['if-range'];
    const range = ifRangeHolds(typeof ifRange === 'string' ? ifRange : undefined, stats) ? parseRange(req.headers.range, size) : { kind: 'full' as const };

    if (range.kind === 'unsatisfiable') {
      return this.sendText(res, record, 416, 'Range Not Satisfiable', {
        ...headers,
        'Content-Range': `bytes */${size}`,
      });
    }
    const start = range.kind === 'partial' ? range.start : 0;
    const unsized = fault?.kind === 'unsized' && range.kind === 'partial' ? fault : undefined;
    const last = range.kind !== 'partial' ? size - 1 : unsized ? Math.min(range.end, range.start + unsized.bytes - 1) : range.end;
    const length = last - start + 1;
    const status = range.kind === 'partial' ? 206 : 200;
    if (range.kind === 'partial') headers['Content-Range'] = `bytes ${range.start}-${last}/${unsized ? '*' : size}`;

    const plan = planBody(length, fault);
    headers['Content-Length'] = String(plan.contentLength);
    if (plan.closeConnection) headers['Connection'] = 'close';
    record.status = status;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.flushHeaders(); // a stall or reset after 0 bytes must still deliver the headers
    await this.pump(res, record, file.file, start, plan);
    await this.finish(res, plan.ending);
  }

  /** Stream plan.send bytes from the file, honouring backpressure and stopping if the client leaves. */
  private async pump(res: ServerResponse, record: RequestRecord, file: string, start: number, plan: BodyPlan) {
    if (plan.send === 0) return;
    const stream = createReadStream(fsPath(file), { start, end: start + plan.send - 1, highWaterMark: 256 * 1024 });
    try {
      let offset = 0;
      for await (const raw of stream as AsyncIterable<Buffer>) {
        if (this.gone(res)) return;
        const chunk = plan.flip ? flipBytes(raw, offset, plan.flip) : raw;
        offset += chunk.length;
        if (plan.trickle && offset > plan.trickle.from) {
          const fast = chunk.length - (offset - plan.trickle.from);
          if (fast > 0 && !(await this.send(res, record, chunk.subarray(0, fast)))) return;
          for (let i = Math.max(0, fast); i < chunk.length; i++) {
            await this.sleep(plan.trickle.everyMs);
            if (this.gone(res) || !(await this.send(res, record, chunk.subarray(i, i + 1)))) return;
          }
          continue;
        }
        if (!(await this.send(res, record, chunk))) return;
      }
    } finally {
      stream.destroy(); // closes the fd when we stop early (client gone, or an error)
    }
  }

  /** Writes one piece of body (counted as sent), waiting out backpressure; false if the client left. */
  private async send(res: ServerResponse, record: RequestRecord, chunk: Buffer): Promise<boolean> {
    if (this.gone(res)) return false;
    record.bytes += chunk.length;
    this.sent += chunk.length;
    if (!res.write(chunk)) await drained(res);
    return true;
  }

  private async finish(res: ServerResponse, ending: Ending): Promise<void> {
    if (this.gone(res)) return;
    switch (ending) {
      case 'end':
        res.end();
        return;
      case 'stall':
        return; // never end: close() destroys the socket
      case 'reset': {
        await flushed(res);
        const socket = res.socket;
        if (socket && !socket.destroyed) socket.resetAndDestroy();
        return;
      }
    }
  }

  // --- responses and utilities -------------------------------------------------------------------------------

  /** The `page` fault: a 200 with a short HTML page, after a delay for requests from byte 0. */
  private async sendPage(req: IncomingMessage, res: ServerResponse, record: RequestRecord, fault: { bytes?: number; fromZeroDelayMs?: number }): Promise<void> {
    const fromZero = parseRange(req.headers.range, Infinity);
    if (fromZero.kind !== 'partial' || fromZero.start === 0) {
      await this.sleep(fault.fromZeroDelayMs ?? 0);
      if (this.gone(res)) return;
    }
    const html = '<html><head><title>Maintenance</title></head><body>Back soon.</body></html>\n';
    const body = Buffer.from(html.repeat(Math.ceil((fault.bytes ?? 60) / html.length) + 1)).subarray(0, fault.bytes ?? 60);
    record.status = 200;
    res.writeHead(200, { 'Content-Type': 'text/html', 'Content-Length': String(body.length) });
    if (record.method === 'HEAD') return void res.end();
    record.bytes += body.length;
    this.sent += body.length;
    res.end(body);
  }

  /** The `endless` fault: `prefix`, then 'x' bytes for as long as the client reads (or `contentLength` of them). */
  private async sendEndless(res: ServerResponse, record: RequestRecord, fault: { prefix?: string; contentLength?: number }, status = 200, headers: Record<string, string> = {}): Promise<void> {
    const claimed = fault.contentLength;
    record.status = status;
    res.writeHead(status, { 'Content-Type': 'application/octet-stream', ...headers, ...(claimed === undefined ? {} : { 'Content-Length': String(claimed) }) });
    if (record.method === 'HEAD') return void res.end();
    res.flushHeaders();
    const filler = Buffer.alloc(64 * 1024, 'x');
    let left = claimed ?? Infinity;
    let chunk: Buffer = Buffer.from(fault.prefix ?? '');
    while (left > 0 && !this.gone(res)) {
      const piece = chunk.subarray(0, Math.min(chunk.length, left));
      left -= piece.length;
      if (piece.length > 0 && !(await this.send(res, record, piece))) return;
      chunk = filler;
    }
    if (!this.gone(res)) res.end();
  }

  /** 1xx answers forever: a client that restarts its headers timer at each never gets a final answer. */
  private async sendHints(res: ServerResponse, everyMs: number): Promise<void> {
    while (!this.gone(res)) {
      res.writeEarlyHints({ link: '</parts/>; rel=preload' });
      await this.sleep(everyMs);
    }
  }

  private sendError(res: ServerResponse, record: RequestRecord, status: 400 | 403 | 404): void {
    this.sendText(res, record, status, STATUS_TEXT[status] ?? 'Error');
  }

  private sendText(
    res: ServerResponse,
    record: RequestRecord,
    status: number,
    text: string,
    headers: Record<string, string> = {},
  ): void {
    const body = Buffer.from(text + '\n');
    record.status = status;
    res.writeHead(status, { 'Content-Type': 'text/plain', ...headers, 'Content-Length': String(body.length) });
    if (record.method === 'HEAD') {
      res.end();
      return;
    }
    record.bytes += body.length;
    this.sent += body.length;
    res.end(body);
  }

  /** An unexpected error: answer 500 if we still can, otherwise drop the connection. Never throw. */
  private fail(res: ServerResponse, err: unknown): void {
    process.stderr.write(`mirror-server: ${err instanceof Error ? err.stack : String(err)}\n`);
    if (!res.headersSent && !res.destroyed) {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end('internal error\n');
    } else {
      res.destroy();
    }
  }

  private gone(res: ServerResponse): boolean {
    return res.destroyed || this.closing !== undefined;
  }

  /** A timer that close() can cut short, so pending latency never keeps the process alive. Infinity: until close(). */
  private sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      // (setTimeout takes Infinity for 1 ms)
      const timer = ms === Infinity ? undefined : setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Standalone runner

interface CliArgs {
  root: string;
  port: number;
  latencyMs: number;
  log: boolean;
}

function parseArgs(argv: string[]): CliArgs {
  const args: CliArgs = { root: '', port: 0, latencyMs: 0, log: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--root') args.root = value();
    else if (flag === '--port') args.port = Number(value());
    else if (flag === '--latency') args.latencyMs = Number(value());
    else if (flag === '--log') args.log = true;
    else throw new Error(`unknown argument: ${flag}`);
  }
  if (!args.root) throw new Error('--root DIR is required');
  if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) throw new Error('bad --port');
  if (!Number.isFinite(args.latencyMs) || args.latencyMs < 0) throw new Error('bad --latency');
  return args;
}

async function runStandalone(argv: string[]): Promise<void> {
  let args: CliArgs;
  try {
    args = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`mirror-server: ${(err as Error).message}\n`);
    process.stderr.write('usage: mirror-server --root DIR [--port N] [--latency MS] [--log]\n');
    process.exit(2);
  }
  const onResponse = args.log ? logRecord : undefined;
  const mirror = await startMirror({ root: args.root, port: args.port, latencyMs: args.latencyMs, onResponse });
  process.stdout.write(mirror.url + '\n');
  const stop = (): void => {
    void mirror.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

function logRecord(r: RequestRecord): void {
  process.stderr.write(`${r.method} ${r.path} ${r.range ?? '-'} ${r.status} ${r.bytes} ${r.fault ?? ''}\n`);
}

function isMainModule(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMainModule()) {
  runStandalone(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`mirror-server: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
