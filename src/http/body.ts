import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** What a response needs of the engine's reader (ImageSession.reader). */
export interface RangeReader {
  readTo(offset: number, target: Buffer): Promise<number>;
}

/** Bytes read from the engine per step; two steps are in flight per response (one read, one write). */
export const CHUNK = 256 << 10;

/** The client went away (or the response was destroyed): stop reading for it. */
export class ClientGone extends Error {}

/** Callbacks for a connection's 'close', one listener per connection however many responses it carries. */
const closeWatchers = new WeakMap<Socket, Set<() => void>>();

/** Calls `fn` when `socket` closes (at once if it has); returns what stops that. */
function onConnectionClose(socket: Socket, fn: () => void): () => void {
  if (socket.destroyed) {
    fn();
    return () => undefined;
  }
  let watchers = closeWatchers.get(socket);
  if (!watchers) {
    const all = (watchers = new Set());
    closeWatchers.set(socket, all);
    socket.once('close', () => {
      for (const watcher of all) watcher();
      all.clear();
    });
  }
  watchers.add(fn);
  return () => void watchers.delete(fn);
}

/**
 * Writes to one response with backpressure: `write` resolves only once the socket took the bytes
 * (the kernel's buffer, not ours), so a slow client holds at most the buffers in flight. A client that
 * disconnects rejects every pending and later write with ClientGone. Told by the response's 'close' or by its
 * connection's: a response queued behind another on a pipelined connection gets no 'close' of its own when the
 * connection goes (Node 20), nor the callbacks of the writes it queued.
 */
export class ResponseWriter {
  private gone = false;
  /** Cut because the client took none of a write for `sendMs` (a client that stopped reading holds a slot). */
  stalled = false;
  /** Writes waiting for their callback: each one's rejection, and what stops its stall clock. */
  private readonly pending = new Map<(err: Error) => void, () => void>();

  constructor(
    private readonly res: ServerResponse,
    private readonly sendMs = Infinity,
  ) {
    const unwatch = onConnectionClose(res.req.socket, () => this.lose());
    res.once('close', () => {
      unwatch();
      this.lose();
    });
  }

  /** The client is gone (or cut): every pending and later write fails with ClientGone. */
  private lose(): void {
    if (this.res.writableFinished || this.gone) return;
    this.gone = true;
    // The clocks too: a write whose socket was destroyed may never be called back (Node 20 drops it), and its clock held
    // the response and its buffers for --send-timeout (60 s), whatever --max-clients says (512 KiB per client gone).
    for (const [reject, stop] of this.pending) {
      stop();
      reject(new ClientGone('client gone'));
    }
    this.pending.clear();
  }

  get closed(): boolean {
    return this.gone || this.res.destroyed;
  }

  /** The client took none of a write for `sendMs`: the response goes (its connection with it). */
  private cut(): void {
    if (this.gone) return; // (a timer of a write that failed with the client's going)
    this.stalled = true;
    this.lose();
    this.res.destroy();
  }

  write(chunk: Buffer | string): Promise<void> {
    if (this.closed) return Promise.reject(new ClientGone('client gone'));
    return new Promise<void>((resolve, reject) => {
      // The clock runs from the response's turn on its connection (one queued behind another waits for that).
      let stall: NodeJS.Timeout | undefined;
      const arm = (): void => void (stall = setTimeout(() => this.cut(), this.sendMs).unref());
      const stop = (): void => {
        clearTimeout(stall);
        this.res.off('socket', arm);
      };
      this.pending.set(reject, stop);
      if (Number.isFinite(this.sendMs)) {
        if (this.res.socket) arm();
        else this.res.once('socket', arm);
      }
      this.res.write(chunk, (err) => {
        stop();
        this.pending.delete(reject);
        if (err || this.gone) reject(new ClientGone('client gone'));
        else resolve();
      });
    });
  }
}

/**
 * Sends the image's bytes [start, end] (inclusive) to `out`: reads and writes overlap (two buffers, each
 * reused only once the socket took it). A read that fails (a part no source can give) throws: the caller
 * must then destroy the connection, since a byte count was promised and no wrong byte may stand in.
 * `onSent` counts each write the socket took, as it goes (`status` of a long download, or of one cut, showed 0 MB).
 */
export async function sendRange(out: ResponseWriter, reader: RangeReader, start: number, end: number, onSent: (bytes: number) => void = () => undefined): Promise<number> {
  const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  const writes: Array<Promise<void> | undefined> = [undefined, undefined];
  let sent = 0;
  for (let at = start, i = 0; at <= end; i = 1 - i) {
    await writes[i]; // this buffer is free again
    if (out.closed) throw new ClientGone('client gone');
    const want = Math.min(CHUNK, end + 1 - at);
    const n = await reader.readTo(at, buffers[i]!.subarray(0, want));
    if (n !== want) throw new Error(`the engine gave ${n} bytes at offset ${at}, not ${want}`);
    const w = out.write(buffers[i]!.subarray(0, n)).then(() => onSent(n));
    w.catch(() => undefined); // awaited below or by the next round; a rejection is seen there
    writes[i] = w;
    at += n;
    sent += n;
  }
  // On a throw the buffers are simply dropped: no round reuses them, and the caller destroys the socket,
  // which settles the writes still pending (waiting for them could hang on a stalled client).
  await Promise.all(writes);
  return sent;
}
