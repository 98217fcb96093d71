import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { errorMessage } from '../format/errors.js';
import { serveControl, type ControlHandler, type ControlServer } from '../fuse/control.js';
import { baseUrl, controlKey, urlHost, type ServerAddress } from './address.js';
import { countStatus, handleRequest, newStats, type ServeContext } from './handler.js';
import type { ServedImage } from './served-image.js';
import { serverStatus } from './status.js';
import { armExitWatchdog } from '../util/exit-watchdog.js';
import { onEndingSignal } from '../util/signals.js';

export interface ServeOptions {
  host: string;
  port: number;
  /** Requests served at the same time; more are answered 503 with Retry-After. */
  maxClients: number;
  /** How long SIGTERM waits for responses under way before cutting them. */
  drainMs: number;
  /** How long a client may take none of a response's bytes before the response is cut. */
  sendMs: number;
  log: (line: string) => void;
  /** Extra status fields (network statistics), from the layers that have them. */
  extraStatus?: () => unknown;
}

/** The status of a request Node's parser refused, by its error code (see the 'clientError' listener); else 400. */
const REFUSED_STATUS: Record<string, number> = { HPE_INVALID_METHOD: 501, HPE_HEADER_OVERFLOW: 431, HPE_CHUNK_EXTENSIONS_OVERFLOW: 413, ERR_HTTP_REQUEST_TIMEOUT: 408 };

/** An answer of `status` alone, written straight to a socket that closes after it (`headers`: more, each ending CRLF). */
function bareAnswer(status: number, headers = ''): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${headers}Content-Length: 0\r\nConnection: close\r\n\r\n`;
}

/**
 * The most connections the server keeps open at once; one more is closed as it comes (Node's maxConnections). Without
 * a cap a client opening idle connections by the thousand held a descriptor each (until the 60 s headersTimeout) and
 * the server's own opens of parts and cache files failed. Room for a few waiting connections per served client, never
 * more than half the descriptors this process may open.
 */
export function connectionCap(maxClients: number, openFiles = openFileLimit()): number {
  return Math.max(16, Math.min(maxClients * 4 + 256, Math.floor(openFiles / 2)));
}

/** This process's soft limit on open files (/proc/self/limits), or Linux's usual default when it cannot be read. */
function openFileLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    return Number.isFinite(soft) && soft > 0 ? soft : 1024; // "unlimited" reads as NaN
  } catch {
    return 1024;
  }
}

/** Listens, or fails with one line naming the address (in use, not ours to bind). */
function listen(server: Server, host: string, port: number): Promise<ServerAddress> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied (ports below 1024 need root)' : err.message;
      reject(new Error(`${urlHost(host)}:${port}: cannot listen: ${why}`));
    });
    server.listen({ host, port }, () => {
      const a = server.address();
      resolve({ host: urlHost(host), port: typeof a === 'object' && a ? a.port : port });
    });
  });
}

/** A running `jigdofs serve`: the HTTP server, its admission limit, the status socket and the drain on stop. */
class ImageServer {
  private active = 0;
  /** Connections with a request being served (admit): a quiet one of these is not closed by the idle timeout. */
  private readonly serving = new Set<Socket>();
  private draining = false;
  private readonly ctx: ServeContext;
  private readonly http: Server;
  private readonly startedAt = Date.now();
  private onIdle: (() => void) | undefined;

  constructor(
    private readonly images: ServedImage[],
    private readonly opts: ServeOptions,
  ) {
    this.ctx = { images: new Map(images.map((i) => [i.name, i])), log: opts.log, stats: newStats(), sendMs: opts.sendMs };
    this.http = createServer((req, res) => this.admit(req, res));
    this.http.keepAliveTimeout = 5000;
    // A client that half-closes once its request is sent (`nc -N`, a script, an HTTP/1.0-style tool) still gets its
    // answers: with Node's default (false) its socket was ended as soon as that end arrived, and every body we were
    // still reading for was cut after its headers. Node then ends the connection after the last answer owed.
    (this.http as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    // A connection with no traffic for --send-timeout and no request being served is closed. Between requests no
    // timeout of Node's runs: a client that pipelined requests and read no answer held its connection for good once
    // Node stopped reading it (the answers backed up), and enough of them filled the connection cap. One being served
    // is left to its own timers (a body's stall timer, the part fetch's).
    this.http.timeout = opts.sendMs;
    this.http.on('timeout', (socket: Socket) => {
      if (!this.serving.has(socket)) socket.destroy();
    });
    this.http.maxConnections = connectionCap(opts.maxClients);
    this.http.on('drop', () => this.ctx.stats.connectionsDropped++);
    // CONNECT (a client taking us for a proxy): answered, as other methods are (405 with Allow), not a connection closed
    // without a word, which Node does when nobody listens for it.
    this.http.on('connect', (_req: IncomingMessage, socket: Socket) => {
      this.ctx.stats.requests++;
      countStatus(this.ctx, 405);
      socket.on('error', () => undefined);
      socket.end(bareAnswer(405, 'Allow: GET, HEAD\r\n'));
    });
    // A request Node's parser refuses gets the answer Node gives it (lib/_http_server.js), but a method it does not
    // know (`FOO /image.iso`, `get`): 501, as RFC 9110 §15.6.2 says, not Node's bare 400. Nothing is written to a
    // connection that was answered before (a pipelined request after a good one), as Node does.
    this.http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      const answer = bareAnswer(REFUSED_STATUS[err.code ?? ''] ?? 400);
      if (err.code === 'HPE_INVALID_METHOD') {
        this.ctx.stats.requests++;
        countStatus(this.ctx, 501);
      }
      if (socket.writable && socket.bytesWritten === 0) socket.end(answer);
      socket.destroySoon();
    });
  }

  /**
   * Serves the request unless `maxClients` are being served already (503: the client retries). A request pipelined
   * behind another on its connection waits for its turn first (the response gets the socket), taking no slot: Node
   * hands us every pipelined request at once, and one connection with 64 of them held every slot for hours.
   */
  private admit(req: IncomingMessage, res: ServerResponse): void {
    if (!res.socket) {
      res.once('socket', () => this.admit(req, res));
      return;
    }
    if (this.draining) res.setHeader('Connection', 'close');
    if (this.active >= this.opts.maxClients) {
      this.ctx.stats.requests++;
      countStatus(this.ctx, 503);
      const body = `${this.opts.maxClients} clients are being served (--max-clients); retry\n`;
      res.writeHead(503, { 'Retry-After': '1', 'Content-Type': 'text/plain', 'Content-Length': String(Buffer.byteLength(body)) });
      res.end(body);
      return;
    }
    this.active++;
    const socket = res.socket;
    this.serving.add(socket);
    // The slot goes back once the handler is done with the request, its reads included; not at the response's
    // 'close': a response queued behind another on a pipelined connection never gets one when the connection goes
    // (Node 20), and a client gone in the middle of a read must not let more reads run than --max-clients.
    handleRequest(this.ctx, req, res)
      .catch((err: unknown) => {
        this.opts.log(`${req.method} ${req.url}: internal error: ${errorMessage(err)}`);
        res.destroy();
      })
      .finally(() => {
        this.serving.delete(socket);
        this.active--;
        if (this.active === 0) this.onIdle?.();
      });
  }

  private controlHandler(url: string): ControlHandler {
    return async ({ op }) => {
      if (op === 'ping') return 'pong';
      if (op === 'status') {
        return serverStatus({
          url,
          images: this.images,
          startedAt: this.startedAt,
          stats: this.ctx.stats,
          activeClients: this.active,
          maxClients: this.opts.maxClients,
          maxConnections: this.http.maxConnections,
          draining: this.draining,
          extra: this.opts.extraStatus,
        });
      }
      throw new Error(`unknown request ${op} (a server answers status; stop it with SIGTERM)`);
    };
  }

  /** Listens on HTTP and on the control socket; returns the base URL. */
  async start(): Promise<{ url: string; control: ControlServer }> {
    const address = await listen(this.http, this.opts.host, this.opts.port);
    const url = baseUrl(address);
    try {
      return { url, control: await serveControl(controlKey(address), this.controlHandler(url)) };
    } catch (err) {
      this.http.close();
      throw err;
    }
  }

  /** Stops accepting, lets responses under way finish (up to drainMs, or until `cut`), then cuts what is left. */
  async drain(cut: Promise<unknown>): Promise<void> {
    this.draining = true;
    this.http.close();
    this.http.closeIdleConnections();
    const idle = new Promise<void>((resolve) => {
      this.onIdle = resolve;
      if (this.active === 0) resolve();
    });
    const sweep = setInterval(() => this.http.closeIdleConnections(), 100); // keep-alive sockets whose response just ended
    const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), this.opts.drainMs).unref());
    const started = Date.now();
    const ended = await Promise.race([idle.then(() => 'idle' as const), timeout.then(() => 'timeout' as const), cut.then(() => 'signal' as const)]);
    clearInterval(sweep);
    if (ended !== 'idle') {
      // (A second signal cuts them early: it said "after 30 s" 4.5 s in.)
      const why = ended === 'timeout' ? `after ${this.opts.drainMs / 1000} s` : `at a second signal, ${((Date.now() - started) / 1000).toFixed(1)} s in`;
      this.opts.log(`drain: ${this.active} response(s) still running ${why}, cut off`);
    }
    this.http.closeAllConnections();
  }

  get activeClients(): number {
    return this.active;
  }
}

/** Resolves with the next of SIGTERM / SIGINT / SIGHUP (signals.ts: a third one ends the process). */
function nextSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => onEndingSignal(resolve));
}

/**
 * Serves the images until SIGTERM/SIGINT/SIGHUP, then drains: no new connections, responses under way
 * finish (a second signal cuts them at once). `onReady` gets the base URL once both sockets listen.
 */
export async function runServer(images: ServedImage[], opts: ServeOptions, onReady: (url: string) => void): Promise<void> {
  const server = new ImageServer(images, opts);
  const { url, control } = await server.start();
  process.on('unhandledRejection', (err) => opts.log(`internal error (ignored): ${errorMessage(err)}`));
  onReady(url);
  const sig = await nextSignal();
  opts.log(`stopping (${sig}): ${server.activeClients} response(s) under way, waiting up to ${opts.drainMs / 1000} s`);
  const second = nextSignal().then((s) => opts.log(`second signal (${s}): cutting the responses under way`));
  await server.drain(second);
  armExitWatchdog('serve:', 'stopping');
  control.close();
  opts.log('stopped');
}
