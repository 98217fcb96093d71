import { connect, type Socket } from 'node:net';

/** Bytes one socket read may bring: every read of a connection lands in its one buffer (no allocation per read). */
const READ_BUFFER = 256 * 1024;
/** An idle connection is closed after this long (undici's keepAliveTimeout here too). */
const KEEP_ALIVE_MS = 10_000;
const HEAD_BUFFER = 16 * 1024;

/** What a connection hands its reads to: the exchange that owns it now. */
export interface ConnectionUser {
  onBytes(buf: Buffer, n: number): void;
  /** The connection ended or failed (no more bytes will come). */
  onEnd(err?: Error): void;
  /** No bytes for the socket's timeout (set by the user). */
  onTimeout(): void;
}

/**
 * One keep-alive TCP connection to an origin. Its reads go to `user` (node's `onread` option: straight into
 * `buffer`, no chunk objects); with no user (idle), data or an end closes it. Owns its socket and idle timer.
 */
export class Connection {
  readonly socket: Socket;
  readonly buffer = Buffer.allocUnsafeSlow(READ_BUFFER);
  /**
   * Where an answer's head is gathered (it may come in several reads): one per connection, not one per request,
   * as a thread that allocates little collects garbage late (a 16 KiB buffer per request held ~30 MB).
   */
  head = Buffer.allocUnsafeSlow(HEAD_BUFFER);
  user: ConnectionUser | undefined;
  /** Carried a request before: a failure before the first byte of an answer may be the server's idle close. */
  used = false;
  connected = false;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly origin: string,
    host: string,
    port: number,
    private readonly onClose: (c: Connection) => void,
  ) {
    this.socket = connect({
      host,
      port,
      noDelay: true,
      onread: { buffer: this.buffer, callback: (n: number, buf: Uint8Array) => this.bytes(buf as Buffer, n) },
    });
    this.socket.once('connect', () => (this.connected = true));
    this.socket.on('error', (err) => this.end(err));
    this.socket.on('end', () => this.end());
    this.socket.on('timeout', () => this.user?.onTimeout());
    this.socket.on('close', () => {
      this.end();
      clearTimeout(this.idleTimer);
      this.onClose(this);
    });
  }

  private bytes(buf: Buffer, n: number): boolean {
    if (this.user) this.user.onBytes(buf, n);
    else this.socket.destroy(); // nothing was asked: a server talking out of turn
    return true;
  }

  private end(err?: Error): void {
    const user = this.user;
    this.user = undefined;
    user?.onEnd(err);
  }

  /** Gives the connection to `user` (the idle timer stops) until `release` or `close`. */
  take(user: ConnectionUser): void {
    clearTimeout(this.idleTimer);
    this.user = user;
  }

  /** Closes the connection without telling its user (who gave up on it). */
  close(): void {
    this.user = undefined;
    this.socket.destroy();
  }

  /** The exchange is over and the connection can carry another: it waits, idle, for KEEP_ALIVE_MS. */
  release(): void {
    this.user = undefined;
    this.used = true;
    this.socket.setTimeout(0);
    this.idleTimer = setTimeout(() => this.socket.destroy(), KEEP_ALIVE_MS);
    this.idleTimer.unref();
  }
}

/** The idle keep-alive connections of one thread, by origin. */
export class ConnectionPool {
  private readonly idle = new Map<string, Connection[]>();

  /** An idle connection to `url`'s origin, or a new one. */
  get(url: URL): Connection {
    const list = this.idle.get(url.origin);
    const reused = list?.pop();
    if (reused) return reused;
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    return new Connection(url.origin, host, Number(url.port || 80), (c) => this.forget(c));
  }

  put(c: Connection): void {
    c.release();
    const list = this.idle.get(c.origin) ?? [];
    list.push(c);
    this.idle.set(c.origin, list);
  }

  private forget(c: Connection): void {
    const list = this.idle.get(c.origin);
    const i = list?.indexOf(c) ?? -1;
    if (i >= 0) list!.splice(i, 1);
  }
}
