import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, type Stats } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** The control directory cannot be trusted (another user's, a symlink, open to others): never use it. */
export class UntrustedControlDir extends Error {}

const myUid = (): number => process.getuid?.() ?? 0;

/**
 * Where the control sockets live: `$XDG_RUNTIME_DIR/jigdofs`, else a per-user `<tmp>/jigdofs-<uid>`.
 * A shared folder in /tmp would let any user create it first, block everyone's mounts, or plant a
 * socket that answers our `status` and `umount`: so the folder is the user's own, and checked.
 */
export function controlDir(): string {
  const runtime = process.env.XDG_RUNTIME_DIR;
  return runtime ? path.join(runtime, 'jigdofs') : path.join(tmpdir(), `jigdofs-${myUid()}`);
}

/** Why `st` (from lstat) is not a folder only we can use, or undefined when it is. */
function controlDirProblem(st: Stats, uid = myUid()): string | undefined {
  if (st.isSymbolicLink()) return 'is a symbolic link';
  if (!st.isDirectory()) return 'is not a directory';
  if (st.uid !== uid) return `is owned by uid ${st.uid}, not by us (uid ${uid})`;
  if ((st.mode & 0o777) !== 0o700) return `has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, not 0700`;
  return undefined;
}

/**
 * Checks the control folder (lstat: a symlink is refused, not followed) and returns it; with `create`,
 * makes it first (0700). Throws UntrustedControlDir naming the folder, what is wrong and what to do;
 * without `create`, a missing folder returns undefined (no mount of ours can be running).
 */
export function checkedControlDir(create: boolean): string | undefined {
  const dir = controlDir();
  if (create) {
    try {
      mkdirSync(dir, { mode: 0o700 });
      chmodSync(dir, 0o700); // ours, just made: the umask must not leave it 0500 or the like
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') mkdirSync(dir, { recursive: true, mode: 0o700 });
      else if (code !== 'EEXIST') throw new Error(`${dir}: cannot create the control socket folder (${code})`);
    }
  }
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch (err) {
    if (!create && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${dir}: cannot use the control socket folder (${(err as NodeJS.ErrnoException).code})`);
  }
  const problem = controlDirProblem(st);
  if (problem) {
    throw new UntrustedControlDir(
      `${dir}: control socket folder ${problem}; refusing to use it (remove it, or set XDG_RUNTIME_DIR to a private folder)`,
    );
  }
  return dir;
}

/**
 * The control channel of a running mount: a Unix socket named after the mountpoint, answering one JSON
 * request per connection (`status`, `unmount`). A socket rather than a file inside the mount: its answers
 * change all the time, which the kernel's page cache (kernelCache) would otherwise serve stale.
 */
export function controlSocketPath(mnt: string, dir: string): string {
  return path.join(dir, `${createHash('sha256').update(path.resolve(mnt)).digest('hex').slice(0, 24)}.sock`);
}

export interface ControlRequest {
  op: string;
  lazy?: boolean;
}
export type ControlHandler = (request: ControlRequest) => Promise<unknown>;

/**
 * The longest request line taken (ours are under 100 bytes): a client that sends more, or never ends its line, is
 * answered "bad request" instead of having the daemon hold all it sends.
 */
const MAX_REQUEST = 64 << 10;

/** Listens on the mount's socket; the folder is checked (and made) first, so a bad one fails before the mount. */
export async function serveControl(mnt: string, handler: ControlHandler): Promise<Server> {
  const file = controlSocketPath(mnt, checkedControlDir(true)!);
  await rm(file, { force: true });
  const server = createServer((socket) => {
    let text = '';
    let taken = false;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      if (taken) return; // one request per connection: what follows its line is not read
      const newline = d.indexOf('\n');
      text += newline < 0 ? d : d.slice(0, newline);
      if (newline < 0 && text.length <= MAX_REQUEST) return;
      taken = true;
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
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => resolve());
  });
  server.unref();
  return server;
}

/**
 * The socket of the mount at `mnt`, when a daemon of ours can be behind it: the folder passes the
 * check, and the socket is a socket we own (never talk to one someone else put there).
 */
function trustedSocket(mnt: string): string {
  const dir = checkedControlDir(false);
  const file = dir && controlSocketPath(mnt, dir);
  const st = file ? (() => { try { return lstatSync(file); } catch { return undefined; } })() : undefined;
  if (!file || !st) throw new Error(`no jigdofs daemon for ${mnt} (no control socket)`);
  if (!st.isSocket() || st.uid !== myUid()) throw new UntrustedControlDir(`${file}: not a control socket of ours (owner uid ${st.uid}); refusing to use it`);
  return file;
}

/** Sends one request to the mount at `mnt`; rejects when no daemon answers within `timeoutMs`. */
export function askControl(mnt: string, op: string, timeoutMs = 5000, extra: Omit<ControlRequest, 'op'> = {}): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(trustedSocket(mnt));
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from the jigdofs daemon of ${mnt}`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify({ ...extra, op })}\n`));
    socket.on('data', (d: string) => (text += d));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`no jigdofs daemon for ${mnt} (${(err as NodeJS.ErrnoException).code ?? err.message})`));
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        const reply = JSON.parse(text) as { result?: unknown; error?: string };
        if (reply.error) reject(new Error(reply.error));
        else resolve(reply.result);
      } catch {
        reject(new Error(`garbled answer from the jigdofs daemon of ${mnt}`));
      }
    });
  });
}
