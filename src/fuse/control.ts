import { createHash } from 'node:crypto';
import { chmodSync, linkSync, lstatSync, mkdirSync, readdirSync, rmSync, unlinkSync, type Stats } from 'node:fs';
import { link, lstat, rename, rm } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** The control directory cannot be trusted (another user's, a symlink, open to others): never use it. */
export class UntrustedControlDir extends Error {}

/** Nothing behind a mount's control socket name: no socket, or nothing listens on it (not: a daemon that does not answer). */
export class NoDaemon extends Error {}

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
export function checkedControlDir(create: boolean, dir = controlDir()): string | undefined {
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
  return path.join(dir, `${mountKey(mnt)}.sock`);
}

const mountKey = (mnt: string): string => createHash('sha256').update(path.resolve(mnt)).digest('hex').slice(0, 24);

/**
 * Where the daemon `pid` of a mount at `mnt` answers once its mount was detached lazily (ControlServer.detach): a name
 * of its own, so the mount's name is free for the next mount on the path, and `status` still finds the daemon by the
 * path (detachedSockets).
 */
export function detachedSocketPath(mnt: string, dir: string, pid = process.pid): string {
  return path.join(dir, `${mountKey(mnt)}.detached-${pid}.sock`);
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

/** One request per connection, one JSON line each way (see MAX_REQUEST). */
function answerRequests(handler: ControlHandler): (socket: Socket) => void {
  return (socket) => {
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

let asideSerial = 0;

/**
 * Removes the name `file` if it is still the socket (inode `ino`) found dead or silent. Moved aside first and checked
 * there: a plain rm could remove the socket another claimer linked meanwhile (two new daemons finding one dead
 * socket), which then goes back under its name.
 */
export async function takeOver(file: string, ino: number): Promise<void> {
  const aside = path.join(path.dirname(file), `.gone.${process.pid}.${++asideSerial}`);
  if (!(await rename(file, aside).then(() => true, () => false))) return;
  const moved = await lstat(aside).catch(() => undefined);
  if (moved && moved.ino !== ino) await link(aside, file).catch(() => undefined); // another's: given back
  await rm(aside, { force: true });
}

/**
 * The folders a daemon of this user may have put its socket in: this environment's first, then the others. A mount
 * made at boot from /etc/fstab has no XDG_RUNTIME_DIR (its socket is in /tmp/jigdofs-UID); the login shell that asks
 * for its status has one (/run/user/UID).
 */
function controlDirCandidates(): string[] {
  const uid = myUid();
  return [...new Set([controlDir(), path.join('/run/user', String(uid), 'jigdofs'), path.join(tmpdir(), `jigdofs-${uid}`)])];
}

/**
 * The socket of the mount at `mnt`, when a daemon of ours can be behind it: the folder passes the check, and the
 * socket is a socket we own (never talk to one someone else put there). In this environment's own folder, an
 * untrusted folder or socket is an error; in the others it is passed over.
 */
function trustedSocket(mnt: string): string {
  const [own, ...others] = controlDirCandidates();
  const found = socketIn(mnt, own!, true) ?? others.map((dir) => socketIn(mnt, dir, false)).find((f) => f !== undefined);
  if (!found) throw new NoDaemon(`no jigdofs daemon for ${mnt} (no control socket)`);
  return found;
}

function statOrNone(file: string): Stats | undefined {
  try {
    return lstatSync(file);
  } catch {
    return undefined;
  }
}

/** A socket this user owns: the only kind we talk to (another user's could answer our status and umount). */
const isOurSocket = (st: Stats): boolean => st.isSocket() && st.uid === myUid();

function socketIn(mnt: string, dir: string, own: boolean): string | undefined {
  let checked: string | undefined;
  try {
    checked = checkedControlDir(false, dir);
  } catch (err) {
    if (own) throw err;
    return undefined;
  }
  const file = checked && controlSocketPath(mnt, checked);
  const st = file ? statOrNone(file) : undefined;
  if (!file || !st) return undefined;
  if (isOurSocket(st)) return file;
  if (own) throw new UntrustedControlDir(`${file}: not a control socket of ours (owner uid ${st.uid}); refusing to use it`);
  return undefined;
}

/** A control request that got no answer: `dead` (nothing listens, or the socket is gone) or `silent` (no answer in time). */
class ExchangeError extends Error {
  constructor(
    readonly kind: 'dead' | 'silent',
    message: string,
  ) {
    super(message);
  }
}

/** Sends one request to the socket `file` and returns the text of the answer (all of it, up to the server's end). */
function exchange(file: string, request: ControlRequest, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(file);
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ExchangeError('silent', 'no answer'));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (d: string) => (text += d));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(new ExchangeError('dead', (err as NodeJS.ErrnoException).code ?? err.message));
    });
    socket.on('end', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

/** Sends one request to the mount at `mnt`; rejects when no daemon answers within `timeoutMs`. */
export async function askControl(mnt: string, op: string, timeoutMs = 5000, extra: Omit<ControlRequest, 'op'> = {}): Promise<unknown> {
  const text = await exchange(trustedSocket(mnt), { ...extra, op }, timeoutMs).catch((err: ExchangeError) => {
    throw err.kind === 'silent' ? new Error(`no answer from the jigdofs daemon of ${mnt}`) : new NoDaemon(`no jigdofs daemon for ${mnt} (${err.message})`);
  });
  return replyOf(text, mnt);
}

/**
 * Asks every daemon of `mnt` whose mount was detached lazily and that still serves (detachedSockets); answers in no
 * set order. A daemon that does not answer, or answers with an error, is left out; the socket of one that ended
 * without removing it (killed) is removed.
 */
export async function askDetached(mnt: string, op: string, timeoutMs = 2000): Promise<unknown[]> {
  const asked = detachedSockets(mnt).map(({ file, ino }) =>
    exchange(file, { op }, timeoutMs).then(
      (text) => [replyOf(text, mnt)],
      async (err: ExchangeError) => {
        // Only a socket nothing listens on is a dead daemon's: a full backlog (EAGAIN) is a live one's, and its only name.
        if (err.kind === 'dead' && err.message === 'ECONNREFUSED') await takeOver(file, ino);
        return [];
      },
    ),
  );
  return (await Promise.all(asked.map((a) => a.catch(() => [])))).flat();
}

/**
 * The detached daemons' sockets of `mnt` (detachedSocketPath) in every folder a daemon of ours may use, sockets we own
 * only. An untrusted folder is passed over: the mount's own name, looked for first (askControl), says what is wrong.
 */
function detachedSockets(mnt: string): Array<{ file: string; ino: number }> {
  const prefix = `${mountKey(mnt)}.detached-`;
  const out: Array<{ file: string; ino: number }> = [];
  for (const dir of controlDirCandidates()) {
    let names: string[] = [];
    try {
      if (checkedControlDir(false, dir)) names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names.filter((n) => n.startsWith(prefix) && /^\d+\.sock$/.test(n.slice(prefix.length)))) {
      const file = path.join(dir, name);
      const st = statOrNone(file);
      if (st && isOurSocket(st)) out.push({ file, ino: st.ino });
    }
  }
  return out;
}

/** The result of a daemon's answer `text`; its error, or a garbled answer, throws. */
function replyOf(text: string, mnt: string): unknown {
  let reply: { result?: unknown; error?: string };
  try {
    reply = JSON.parse(text) as typeof reply;
  } catch {
    throw new Error(`garbled answer from the jigdofs daemon of ${mnt}`);
  }
  if (reply.error) throw new Error(reply.error);
  return reply.result;
}
