import { readdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import path from 'node:path';
import { checkedControlDir, controlDirCandidates, controlSocketPath, isOurSocket, mountKey, NoDaemon, statOrNone, takeOver, UntrustedControlDir } from './control-files.js';

/** The commands' side of a mount's control socket (`status`, `umount`): the daemons' side is control.ts. */

export interface ControlRequest {
  op: string;
  lazy?: boolean;
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
export class ExchangeError extends Error {
  constructor(
    readonly kind: 'dead' | 'silent',
    message: string,
  ) {
    super(message);
  }
}

/** Sends one request to the socket `file` and returns the text of the answer (all of it, up to the server's end). */
export function exchange(file: string, request: ControlRequest, timeoutMs: number): Promise<string> {
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

/** A daemon took a control request and did not answer in time (alive, then: busy, stuck, or stopped). */
export class NoAnswer extends Error {}

/**
 * Sends one request to the mount at `mnt`; rejects when no daemon answers within `timeoutMs`. The socket of a daemon
 * that ended without removing it (killed) is removed: it went only when a new mount claimed the path.
 */
export async function askControl(mnt: string, op: string, timeoutMs = 5000, extra: Omit<ControlRequest, 'op'> = {}): Promise<unknown> {
  const file = trustedSocket(mnt);
  const ino = statOrNone(file)?.ino;
  const text = await exchange(file, { ...extra, op }, timeoutMs).catch(async (err: ExchangeError) => {
    if (err.kind === 'silent') throw new NoAnswer(`${mnt}: no answer from its jigdofs daemon`);
    if (ino !== undefined) await removeIfDead(file, ino, err);
    throw new NoDaemon(`no jigdofs daemon for ${mnt} (${err.message})`);
  });
  return replyOf(text, mnt);
}

/** Removes the socket `file` (inode `ino`) when the request failed because nothing listens on it: its daemon is dead. */
async function removeIfDead(file: string, ino: number, err: ExchangeError): Promise<void> {
  // Only a socket nothing listens on is a dead daemon's: a full backlog (EAGAIN) is a live one's, and its only name.
  if (err.kind === 'dead' && err.message === 'ECONNREFUSED') await takeOver(file, ino);
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
        await removeIfDead(file, ino, err);
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
