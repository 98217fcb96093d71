import { linkSync, lstatSync, rmSync, unlinkSync } from 'node:fs';
import { link, lstat, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import path from 'node:path';
import { exchange, type ControlRequest, type ExchangeError } from './control-client.js';
import { checkedControlDir, controlSocketPath, detachedSocketPath, takeOver } from './control-files.js';

/** The daemons' side of the control socket (a mount's, serve's): the commands that ask them are in control-client.ts. */

export type ControlHandler = (request: ControlRequest) => Promise<unknown>;

/**
 * The longest request line taken (ours are under 100 bytes): a client that sends more, or never ends its line, is
 * answered "bad request" instead of having the daemon hold all it sends.
 */
const MAX_REQUEST = 64 << 10;

/**
 * How long a connection may take to send its request line, and how many may be open at once: ours send theirs at once
 * and close after the answer. Connections that sent nothing were kept for good: 21,000 of them took every file
 * descriptor of a mount's daemon, which then could not open its parts or tell whether it was still mounted.
 */
export const REQUEST_MS = 5_000;
export const MAX_CONTROL_CONNECTIONS = 64;

/** One request per connection, one JSON line each way (see MAX_REQUEST). */
function answerRequests(handler: ControlHandler): (socket: Socket) => void {
  return (socket) => {
    let text = '';
    let taken = false;
    socket.setEncoding('utf8');
    socket.setTimeout(REQUEST_MS, () => socket.destroy());
    socket.on('data', (d: string) => {
      if (taken) return; // one request per connection: what follows its line is not read
      const newline = d.indexOf('\n');
      text += newline < 0 ? d : d.slice(0, newline);
      if (newline < 0 && text.length <= MAX_REQUEST) return;
      taken = true;
      socket.setTimeout(0); // (the answer may take a while: an unmount waits for its readers)
      let request: ControlRequest;
      try {
        if (newline < 0) throw new Error('too long');
        request = JSON.parse(text) as ControlRequest;
      } catch {
        socket.end(`${JSON.stringify({ error: 'bad request' })}\n`);
        return;
      }
      handler(request).then(
        (result) => socket.end(`${JSON.stringify({ result })}\n`),
        (err: unknown) => socket.end(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`),
      );
    });
    socket.on('error', () => undefined);
  };
}

let serverSerial = 0;

/** A mount's control server; `close` lets go of the socket's name only while it is still this server's. */
export interface ControlServer {
  close(): void;
  /**
   * Moves the socket from the mount's name to this daemon's detached one (detachedSocketPath), for a mount detached
   * lazily that is still served; where that fails (the name is no longer ours), the server closes.
   */
  detach(): void;
}

/**
 * Listens on the mount's socket; the folder is checked (and made) first, so a bad one fails before the mount.
 *
 * The server listens on a name of its own (`.PID.N`, short: a socket's path has at most 107 bytes), which is then
 * linked to the mount's name and removed: libuv unlinks the path it listened on when the server closes (even at the
 * process's natural end), and that must never be the mount's name, which another daemon may hold by then (a new mount
 * on the path after a lazy detach of ours).
 */
export async function serveControl(mnt: string, handler: ControlHandler): Promise<ControlServer> {
  const dir = checkedControlDir(true)!;
  const file = controlSocketPath(mnt, dir);
  const own = path.join(dir, `.${process.pid}.${++serverSerial}`);
  await rm(own, { force: true });
  const server = createServer(answerRequests(handler));
  server.maxConnections = MAX_CONTROL_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(own, () => resolve());
  });
  server.unref();
  let ino: number;
  try {
    ino = await claimName(own, file, mnt);
  } catch (err) {
    server.close();
    throw err;
  } finally {
    await rm(own, { force: true });
  }
  let open = true;
  let name = file; // the name it answers under: the mount's, then (detach) its own
  const close = (): void => {
    if (!open) return;
    open = false;
    unlinkIfOurs(name, ino);
    server.close();
  };
  return {
    close,
    detach: () => {
      if (!open || name !== file) return;
      const detached = detachedSocketPath(mnt, dir);
      try {
        rmSync(detached, { force: true }); // a killed daemon's of this pid: dead
        linkSync(file, detached); // a link, checked, rather than a rename: the name may be another daemon's meanwhile
        if (lstatSync(detached).ino !== ino) throw new Error('not ours');
      } catch {
        try {
          rmSync(detached, { force: true }); // this daemon's name: whatever is under it is not wanted
        } catch {
          // (the close below says nothing either way)
        }
        return close();
      }
      unlinkIfOurs(file, ino);
      name = detached;
    },
  };
}

/** Removes the name `file` while it is still the socket `ino`: another daemon may hold it by now. */
function unlinkIfOurs(file: string, ino: number): void {
  try {
    if (lstatSync(file).ino === ino) unlinkSync(file);
  } catch {
    // gone already
  }
}

/** How long a live daemon's hold on the name is waited for: one that saw its mount go lets go within about a second. */
const CLAIM_WAIT_MS = 3000;
/** How long a holder may take to answer before it counts as stopped: a daemon's event loop is never blocked this long. */
const HOLDER_ANSWER_MS = 2000;

/**
 * Links our socket (`own`) to the mount's name and returns its inode. A name held by a daemon that answers (one
 * mounting the same path at the same moment, or one whose mount was detached and that has not noticed yet) is waited
 * for, then refused. A dead daemon's socket is taken over, and so is a silent one's: a daemon stopped with its mount
 * still here was refused before (prepareMountpoint), so its mount is gone, and it lets go of nothing until continued.
 */
async function claimName(own: string, file: string, mnt: string): Promise<number> {
  const deadline = Date.now() + CLAIM_WAIT_MS;
  for (;;) {
    try {
      await link(own, file);
      return (await lstat(own)).ino;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new Error(`${file}: cannot create the control socket (${code})`);
    }
    const held = await lstat(file).catch(() => undefined);
    if (!held) continue; // let go meanwhile
    const holder = await exchange(file, { op: 'ping' }, HOLDER_ANSWER_MS).then(() => 'answers', (err: ExchangeError) => err.kind);
    if (Date.now() > deadline) throw new Error(`${mnt}: another jigdofs daemon holds the control socket ${file} (mounting the same path at the same time?)`);
    if (holder !== 'answers') await takeOver(file, held.ino);
    else await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
