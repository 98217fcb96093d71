import { execFile } from 'node:child_process';
import { constants, readFileSync } from 'node:fs';
import { access, readFile, readdir, realpath, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { valueWithin } from '../util/settle.js';
import { promisify } from 'node:util';
import { unescapeMountField } from '../util/mount-field.js';
import { pidFrozen, pidStopped } from '../util/pid.js';
import { daemonPid } from './mount-source.js';

const run = promisify(execFile);

export type MountsReader = () => Promise<string>;
/**
 * Read on the event loop, not on libuv's thread pool: reads from a source on a hung file system can hold all
 * four of its threads, and the daemon's unmount watch then never saw `fusermount -u` (the daemon stayed for
 * good), nor could its stop look whether it was still mounted. /proc/mounts is the kernel's, never on such a
 * file system, and reads in well under 1 ms.
 */
const readProcMounts: MountsReader = async () => readFileSync('/proc/mounts', 'utf8');

/** One mount at a path, as /proc/mounts lists it: what was mounted (the fsname) and its type (`fuse.jigdofs`). */
export interface MountEntry {
  source: string;
  type: string;
}

/** The same mount: its source (which names its daemon: daemonMount) and type. */
const sameMount = (a: MountEntry, b: MountEntry): boolean => a.source === b.source && a.type === b.type;

/** The mounts at `mnt` in /proc/mounts' text, lowest first: the last is the one a look at the path reaches. */
function parseMountsAt(text: string, mnt: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields.length > 2 && unescapeMountField(fields[1]!) === mnt) out.push({ source: unescapeMountField(fields[0]!), type: fields[2]! });
  }
  return out;
}

/**
 * The mounts at `mnt`, lowest first (see parseMountsAt). A /proc/mounts that cannot be read (EMFILE, ENOMEM)
 * throws: "cannot tell" must never pass for "not mounted".
 */
export async function mountsAt(mnt: string, read: MountsReader = readProcMounts): Promise<MountEntry[]> {
  let text: string;
  try {
    text = await read();
  } catch (err) {
    throw new Error(`/proc/mounts: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parseMountsAt(text, mnt);
}

/** The filesystem type mounted at `mnt` (e.g. `fuse.jigdofs`), or undefined; throws as mountsAt does. */
export async function mountedType(mnt: string, read: MountsReader = readProcMounts): Promise<string | undefined> {
  return (await mountsAt(mnt, read)).at(-1)?.type;
}

/**
 * True when the mount a look at `mnt` reaches is `mine` (a mount's source names its daemon: daemonMount), false when
 * it is another or none, undefined when /proc/mounts cannot be read (out of file descriptors): the caller decides what
 * "cannot tell" means. Read synchronously, for fuse-native's unmount callback (fuse-class.ts).
 */
export function topMountIs(mnt: string, mine: MountEntry): boolean | undefined {
  const place = mountPlace(mnt, mine);
  return place === undefined ? undefined : place === 'top';
}

/**
 * Where `mine` is at `mnt`: the top mount, `covered` by another mounted over it, or `gone` (detached); undefined when
 * /proc/mounts cannot be read. Read synchronously, as topMountIs.
 */
export function mountPlace(mnt: string, mine: MountEntry): 'top' | 'covered' | 'gone' | undefined {
  let entries: MountEntry[];
  try {
    entries = parseMountsAt(readFileSync('/proc/mounts', 'utf8'), mnt);
  } catch {
    return undefined;
  }
  const top = entries.at(-1);
  if (top !== undefined && sameMount(top, mine)) return 'top';
  return entries.some((e) => sameMount(e, mine)) ? 'covered' : 'gone';
}

/**
 * Calls `onGone` once no mount at `mnt` is `mine` any more (someone ran `fusermount -u`, which ends the kernel
 * side without telling us). Another mount made there since (after a lazy detach of ours) is not ours: its type
 * alone would have kept a detached daemon up for good. A failed look (out of file descriptors, say) is no answer:
 * it is reported through `onUnknown` and the next look decides. Returns the function that stops watching.
 */
export function watchUnmount(
  mnt: string,
  mine: MountEntry,
  onGone: () => void,
  opts: { intervalMs?: number; read?: MountsReader; onUnknown?: (err: Error) => void } = {},
): () => void {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    mountsAt(mnt, opts.read).then(
      (entries) => {
        busy = false;
        if (entries.some((e) => sameMount(e, mine))) return;
        clearInterval(timer);
        onGone();
      },
      (err: Error) => {
        busy = false;
        opts.onUnknown?.(err);
      },
    );
  }, opts.intervalMs ?? 1000);
  return () => clearInterval(timer);
}

/**
 * The canonical path of a mountpoint (symlinks resolved), as /proc/mounts shows it: a mount made through
 * a link must be found by its real path, and by the link. A stale FUSE mount cannot be resolved itself
 * (ENOTCONN): its parent is, and a mountpoint is never a symlink.
 */
export async function resolveMountpoint(mntArg: string): Promise<string> {
  const abs = path.resolve(mntArg);
  try {
    return await realpath(abs);
  } catch {
    const parent = await realpath(path.dirname(abs)).catch(() => path.dirname(abs));
    return path.join(parent, path.basename(abs));
  }
}

/** How the mount at a path is served: see mountHealth. */
export type MountHealth = 'stale' | 'stopped' | 'frozen' | 'unresponsive' | 'serving';

/** How long a look into a mount may take before its daemon counts as not answering. */
const LOOK_MS = 2000;

/**
 * Whether a daemon serves `entry`, the mount a look at `mnt` reaches: `stale` when it is gone ("Transport endpoint
 * is not connected", as a daemon killed with -9 leaves it), `stopped` when the daemon its source names is stopped
 * (Ctrl-Z, SIGSTOP), `frozen` when its cgroup is (`docker pause`), `unresponsive` when a look into it takes over
 * `timeoutMs`, else `serving`. A look into a stopped or frozen daemon's mount waits until it runs again: those states are
 * read from /proc and the cgroup first. The look itself is bounded here, but it stays pending on libuv's pool, holding
 * the mount (fusermount -u finds it busy) and the process's exit until the daemon answers: a daemon stuck some other
 * way still holds `jigdofs umount`.
 */
export async function mountHealth(mnt: string, entry: MountEntry, timeoutMs = LOOK_MS): Promise<MountHealth> {
  // Stopped: told from /proc, since a look would wait. Gone is told by the look itself (ENOTCONN, at once): a pid not
  // running here may be a daemon in another pid namespace that shares this mount namespace (`unshare --pid`).
  const pid = daemonPid(entry.source);
  if (pid !== undefined && pidStopped(pid)) return 'stopped'; // (one that ended has no /proc entry: not stopped)
  // Frozen by its cgroup: the look would hold the mount (fusermount -u then found it busy) and this process's exit.
  if (pid !== undefined && pidFrozen(pid)) return 'frozen';
  // statfs, not stat: the kernel answers a stat of the mount's root from its attribute cache for a while after the
  // daemon died, and the mount then passed for served (a new mount on the path was refused for ~5 s after a kill -9).
  const look = statfs(mnt).then(
    (): MountHealth => 'serving',
    (err: NodeJS.ErrnoException): MountHealth => (err.code === 'ENOTCONN' ? 'stale' : 'serving'),
  );
  return valueWithin(look, timeoutMs, 'unresponsive');
}

/** A non-lazy unmount refused because something uses the mount (an open file, a working directory). */
export class BusyError extends Error {}

/** fusermount -u (or -uz: lazy, for stale or busy mounts). A busy mount throws BusyError. */
/** mountedType's failure stands for "cannot tell": never taken for "not mounted". */
const FS_UNKNOWN = 'unknown';

export async function fusermountUnmount(mnt: string, lazy: boolean): Promise<void> {
  const args = [lazy ? '-uz' : '-u', mnt];
  for (const bin of ['fusermount', 'fusermount3']) {
    try {
      await run(bin, args, { env: { ...process.env, LC_ALL: 'C' } }); // its messages in English: "busy" is read below
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      const stderr = String((err as { stderr?: string }).stderr ?? '').trim();
      // Unmounted meanwhile (by the daemon answering late, or from outside): what was asked is done.
      if ((await mountedType(mnt).catch(() => FS_UNKNOWN)) === undefined) return;
      // strerror(EBUSY), not any "busy": the message names the mountpoint, whose path may hold the word (/srv/busybox).
      if (/Device or resource busy/.test(stderr)) {
        throw new BusyError(`${mnt}: busy: a process has a file or folder open in it (close it, or use jigdofs umount --lazy to detach it anyway)`);
      }
      throw new Error(stderr || (err as Error).message);
    }
  }
  throw new Error('fusermount not found (apt-get install fuse3)');
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Why `--allow-other` would make fuse fail ("fuse failed" says nothing): only root, or any user when
 * fuse.conf has a `user_allow_other` line, may use it. Undefined when it is allowed.
 */
export async function allowOtherProblem(uid = process.getuid?.() ?? 0, fuseConf = '/etc/fuse.conf'): Promise<string | undefined> {
  if (uid === 0) return undefined;
  const text = await readFile(fuseConf, 'utf8').catch(() => '');
  if (text.split('\n').some((l) => l.trim() === 'user_allow_other')) return undefined;
  return `${fuseConf}: --allow-other needs a user_allow_other line here (root can add it), or mount without --allow-other`;
}

/** Why `mnt` cannot take a FUSE mount (fuse refuses a non-empty folder and reports only "fuse failed"). */
export async function mountpointProblem(mnt: string): Promise<string | undefined> {
  const st = await stat(mnt).catch((err: NodeJS.ErrnoException) => err);
  if (st instanceof Error) return `${mnt}: mountpoint ${st.code === 'ENOENT' ? 'does not exist' : `cannot be used (${st.code})`}`;
  if (!st.isDirectory()) return `${mnt}: mountpoint is not a directory`;
  const entries = await readdir(mnt).catch((err: NodeJS.ErrnoException) => err);
  if (entries instanceof Error) return `${mnt}: mountpoint cannot be listed (${entries.code})`;
  if (entries.length > 0) return `${mnt}: mountpoint is not empty (${entries.length} entries, e.g. ${entries[0]}); mount on an empty directory`;
  return undefined;
}

/**
 * Why fuse could not mount, as far as we can tell from here (fuse-native says only "fuse failed"): no
 * /dev/fuse, a /dev/fuse this user may not open (root-only on some machines; a normal Debian has 0666), or else
 * the general hint.
 */
export async function fuseFailureHint(dev = '/dev/fuse'): Promise<string> {
  const st = await stat(dev).catch(() => undefined);
  if (!st) return `${dev} is missing (modprobe fuse)`;
  const open = await access(dev, constants.R_OK | constants.W_OK).then(() => true, () => false);
  if (!open) return `${dev} is not open to this user (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}; root can chmod 0666 ${dev})`;
  return 'is fusermount3 installed, setuid root, and the mountpoint ours?';
}
