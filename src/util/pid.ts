import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/** The state letter in /proc/PID/stat ("PID (comm) STATE ..."; comm may hold spaces and parentheses: the last ')' ends it). */
function procState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const end = stat.lastIndexOf(')');
  return stat.slice(end + 2, end + 3);
}

/**
 * The process exists and has not ended (possibly another user's: EPERM still means it runs). A zombie
 * (ended, not yet reaped: a daemon whose parent is gone waits for init to reap it) counts as ended.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return procState(pid) !== 'Z';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && existsSync('/proc/self/stat')) return false; // ended just now
    return true; // no /proc: kill(0) is all we know
  }
}

/** The process is stopped (SIGSTOP, Ctrl-Z, a debugger): it answers nothing until it is continued. */
export function pidStopped(pid: number): boolean {
  try {
    const state = procState(pid);
    return state === 'T' || state === 't';
  } catch {
    return false;
  }
}

/**
 * The process is frozen by the cgroup freezer (`docker pause`, `systemctl freeze`): like a stopped one it answers nothing,
 * but /proc shows it as sleeping, and a look into its mount would wait until it is thawed. Read from its cgroup's state:
 * cgroup v1's freezer.state (FROZEN, or FREEZING on the way), v2's cgroup.events ("frozen 1"), under the usual mounts.
 */
export function pidFrozen(pid: number, root = '/sys/fs/cgroup'): boolean {
  for (const line of procText(() => readFileSync(`/proc/${pid}/cgroup`, 'utf8')).split('\n')) {
    const [, controllers, where] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (where === undefined || where.includes('..')) continue;
    if (controllers!.split(',').includes('freezer') && /^FROZEN|^FREEZING/.test(procText(() => readFileSync(`${root}/freezer${where}/freezer.state`, 'utf8')))) return true;
    if (controllers === '') {
      for (const v2 of [root, `${root}/unified`]) if (/^frozen 1$/m.test(procText(() => readFileSync(`${v2}${where}/cgroup.events`, 'utf8')))) return true;
    }
  }
  return false;
}

/** A line of /proc (the kernel's: never on a hung file system), or '' where there is none. */
function procText(read: () => string): string {
  try {
    return read().trim();
  } catch {
    return '';
  }
}

/**
 * Where this process's pids mean something, in the names of files several hosts may share (a cache or an output
 * directory on NFS): the host's name, its boot, and the pid namespace. Containers that share a host name (docker
 * --network host, sandboxes, cloned VMs) each number their processes: by name alone, one took another's live pids for
 * dead and removed its downloads under it. Another tag is judged by age only.
 */
const HOST_TAG = createHash('sha256')
  .update(hostname())
  .update('\0')
  .update(procText(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')))
  .update('\0')
  .update(procText(() => readlinkSync('/proc/self/ns/pid')))
  .digest('hex')
  .slice(0, 8);

/** `HOSTTAG-PID`: how a lock's content and a temporary file's name say which process made them. */
export function ownerTag(pid = process.pid): string {
  return `${HOST_TAG}-${pid}`;
}

/** An owner tag (ownerTag) at the start of a name, followed by `-`; and an owner tag alone. */
const TAGGED_NAME = /^([0-9a-f]{8})-(\d+)-/;
const TAG_ALONE = /^([0-9a-f]{8})-(\d+)$/;

/** The pid of a matched tag if it is this host's (another host's pids mean nothing here). */
function pidHere(m: RegExpExecArray | null): number | undefined {
  return m !== null && m[1] === HOST_TAG ? Number(m[2]) : undefined;
}

/** A process of this host that no longer runs. */
function deadOwner(m: RegExpExecArray | null): boolean {
  const pid = pidHere(m);
  return pid !== undefined && !pidAlive(pid);
}

/** `HOSTTAG-PID-…`: owned by a process of this host that no longer runs. */
export function ownerDead(name: string): boolean {
  return deadOwner(TAGGED_NAME.exec(name));
}

/** Exactly `HOSTTAG-PID` (nothing more), of a process of this host that no longer runs. */
export function ownerTagDead(tag: string): boolean {
  return deadOwner(TAG_ALONE.exec(tag));
}

/**
 * Exactly `HOSTTAG-PID`, of a process of this host that is stopped or frozen: its locks go stale (no heartbeat) while it
 * still means to use what they guard, once continued.
 */
export function ownerTagPaused(tag: string): boolean {
  const pid = pidHere(TAG_ALONE.exec(tag));
  return pid !== undefined && pidAlive(pid) && (pidStopped(pid) || pidFrozen(pid));
}
