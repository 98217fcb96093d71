import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, type Stats } from 'node:fs';
import { link, lstat, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { errorMessage } from '../format/errors.js';

/*
 * The control sockets' folder and names, shared by the daemons' servers (control.ts) and the commands that ask them
 * (control-client.ts): which folder is trusted, what a mount's socket is called, and how a dead one's is taken over.
 */

/** The control directory cannot be trusted (another user's, a symlink, open to others): never use it. */
export class UntrustedControlDir extends Error {}

/** Nothing behind a mount's control socket name: no socket, or nothing listens on it (not: a daemon that does not answer). */
export class NoDaemon extends Error {}

export const myUid = (): number => process.getuid?.() ?? 0;

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
 * `mkdir -p DIR` (0700), one level at a time: Node's own recursive mkdirSync never returns where mkdir answers ENOENT
 * though the parent exists (under /proc: XDG_RUNTIME_DIR=/proc/…), as util/make-dirs.ts says of the async one.
 */
function makeParents(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || path.dirname(dir) === dir) throw err;
    makeParents(path.dirname(dir));
    mkdirSync(dir, { mode: 0o700 });
  }
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
      try {
        if (code === 'ENOENT') makeParents(dir);
        else if (code !== 'EEXIST') throw err;
      } catch (e) {
        // XDG_RUNTIME_DIR naming a folder that is not there or not ours (left from another user after `su`) is common.
        const runtime = process.env.XDG_RUNTIME_DIR ? ` (XDG_RUNTIME_DIR=${process.env.XDG_RUNTIME_DIR}: unset it, or set it to a private folder of yours)` : '';
        throw new Error(`${dir}: cannot create the control socket folder (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})${runtime}`);
      }
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

export const mountKey = (mnt: string): string => createHash('sha256').update(path.resolve(mnt)).digest('hex').slice(0, 24);

/**
 * Where the daemon `pid` of a mount at `mnt` answers once its mount was detached lazily (ControlServer.detach): a name
 * of its own, so the mount's name is free for the next mount on the path, and `status` still finds the daemon by the
 * path (detachedSockets).
 */
export function detachedSocketPath(mnt: string, dir: string, pid = process.pid): string {
  return path.join(dir, `${mountKey(mnt)}.detached-${pid}.sock`);
}

/**
 * The folders a daemon of this user may have put its socket in: this environment's first, then the others. A mount
 * made at boot from /etc/fstab has no XDG_RUNTIME_DIR (its socket is in /tmp/jigdofs-UID); the login shell that asks
 * for its status has one (/run/user/UID).
 */
export function controlDirCandidates(): string[] {
  const uid = myUid();
  return [...new Set([controlDir(), path.join('/run/user', String(uid), 'jigdofs'), path.join(tmpdir(), `jigdofs-${uid}`)])];
}

export function statOrNone(file: string): Stats | undefined {
  try {
    return lstatSync(file);
  } catch {
    return undefined;
  }
}

/** A socket this user owns: the only kind we talk to (another user's could answer our status and umount). */
export const isOurSocket = (st: Stats): boolean => st.isSocket() && st.uid === myUid();

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
