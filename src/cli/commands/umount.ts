import type { Command } from 'commander';
import { askControl, NoAnswer } from '../../fuse/control-client.js';
import { UntrustedControlDir } from '../../fuse/control-files.js';
import { daemonPid, FS_TYPE } from '../../fuse/mount-source.js';
import { daemonText } from '../../fuse/mountpoint.js';
import { BusyError, fusermountUnmount, mountedType, mountHealth, mountsAt, resolveMountpoint, sleep } from '../../fuse/mounts.js';
import { pidAlive } from '../../util/pid.js';
import { detachedDaemons, openFilesText } from './status.js';

/**
 * How long the daemon may take to answer an unmount request (JIGDOFS_UMOUNT_WAIT, in seconds, sets it): it answers
 * after its own (non-lazy) unmount, which waits for the kernel; a shorter wait sent us to the fallback while that
 * unmount was still going.
 */
export const UNMOUNT_ANSWER_MS = Math.max(1, Number(process.env.JIGDOFS_UMOUNT_WAIT) || 30) * 1000;

/** How long umount waits, once the mount is gone, for its daemon to end (saving its hash index, closing its log). */
export const DAEMON_END_MS = 30_000;

/** How long umount waits, once its daemon answered, for the mount to go. */
export const MOUNT_GONE_MS = 5_000;

/** How long `umount --lazy` waits for the daemon of a detached mount to end before saying what it waits for. */
const DETACHED_END_MS = 2000;

/** How often the waits below look again (a process's end, a mount's going: neither can be waited for otherwise). */
const POLL_MS = 50;

/** Whether the process `pid` ends within `ms`. */
async function ended(pid: number, ms: number): Promise<boolean> {
  for (let waited = 0; pidAlive(pid) && waited < ms; waited += POLL_MS) await sleep(POLL_MS);
  return !pidAlive(pid);
}

/**
 * Waits for the daemon `pid` of the mount at `mnt`, which is gone, to end (it saves the hash index and closes its log
 * on the way out): says so when it is still finishing after DAEMON_END_MS.
 */
async function waitDaemonEnd(mnt: string, pid: number): Promise<void> {
  if (!(await ended(pid, DAEMON_END_MS))) process.stderr.write(`jigdofs: ${mnt}: unmounted, but its daemon (pid ${pid}) is still finishing after ${DAEMON_END_MS / 1000} s\n`);
}

/** Waits for the mount to go, then for its daemon to end; false when the mount is still there after MOUNT_GONE_MS. */
async function waitUnmounted(mnt: string, pid: unknown): Promise<boolean> {
  for (let waited = 0; waited < MOUNT_GONE_MS; waited += POLL_MS) {
    if (!(await mountedType(mnt))) {
      if (typeof pid === 'number') await waitDaemonEnd(mnt, pid);
      return true;
    }
    await sleep(POLL_MS);
  }
  return false;
}

/**
 * Asks the daemon to unmount and waits for the mount to go, then for the daemon to end (it saves the hash
 * index and closes its log on the way out: a script that removes the cache right after must not race it);
 * falls back to fusermount. Like umount(8), a busy mount (a reader still has the image open) is refused
 * unless `lazy`, which detaches it now: whatever still uses it (a cp, a loop device, a working folder) goes on
 * being served, and the daemon ends when nothing does. Then the daemon is waited for 2 s at most (it may serve a
 * loop device for days), and one line says what it goes on for.
 */
export async function unmount(mntArg: string, lazy = false): Promise<void> {
  const mnt = await resolveMountpoint(mntArg);
  const top = (await mountsAt(mnt)).at(-1);
  if (!top) throw new Error(await notMounted(mnt));
  if (top.type !== FS_TYPE) throw new Error(`${mnt}: not a jigdofs mount (${top.type})`);
  const health = await mountHealth(mnt, top);
  if (health === 'stale') {
    await fusermountUnmount(mnt, true);
    return;
  }
  if (health !== 'serving') {
    // A stopped or stuck daemon answers nothing, its control socket neither: unmount from outside (a busy mount is still
    // refused unless lazy). Once it runs again, the daemon sees its mount gone and ends.
    process.stderr.write(`jigdofs: ${mnt}: ${daemonText(top)} is ${health}; unmounting with fusermount\n`);
    await fusermountUnmount(mnt, lazy);
    return;
  }
  const answer = await askControl(mnt, 'unmount', UNMOUNT_ANSWER_MS, { lazy }).catch((err: Error) => {
    // The daemon refused (BusyError's `MNT: busy: …`; not any "busy", since the message names the mountpoint): say so.
    if (err.message.includes(`${mnt}: busy: `)) throw new BusyError(err.message);
    if (err instanceof UntrustedControlDir) process.stderr.write(`jigdofs: ${err.message}; unmounting with fusermount instead\n`);
    if (err instanceof NoAnswer) process.stderr.write(`jigdofs: ${err.message} in ${UNMOUNT_ANSWER_MS / 1000} s; unmounting with fusermount\n`);
    return undefined;
  });
  const { pid, open } = (answer ?? {}) as { pid?: unknown; open?: unknown };
  const detached = lazy || (typeof open === 'number' && open > 0); // served until nothing uses it (fuse/detach.ts detachHandler)
  if (answer !== undefined && (await waitUnmounted(mnt, detached ? undefined : pid))) {
    if (detached && typeof pid === 'number' && !(await ended(pid, DETACHED_END_MS))) {
      const files = typeof open === 'number' && open > 1 ? `all ${open} open files are closed` : 'the open file is closed';
      const until = open === 0 ? 'nothing uses the mount any more (a working folder in it, say)' : files;
      process.stderr.write(`jigdofs: ${mnt}: detached; its daemon (pid ${pid}) ends once ${until}\n`);
    }
    return;
  }
  // No daemon answered (or it is stuck): unmount from outside; a busy mount says so (BusyError). Then, as after an
  // answer, the daemon's end: it sees its mount gone within a second (a script that removes the cache next must not
  // race it; one stuck until the mount went was still running here when this returned).
  await fusermountUnmount(mnt, lazy);
  const daemon = daemonPid(top.source);
  if (!lazy && daemon !== undefined) await waitDaemonEnd(mnt, daemon);
}

/**
 * Why there is nothing to unmount at `mnt`, which has no mount: plainly so, or (one line) that it was detached lazily
 * and its daemon still serves what uses it, which it goes on doing: it ends by itself once nothing uses the mount (the
 * kernel says so; the open files it counts are not all: a working folder in it, a bind mount); a kill ends it now, and
 * fails the reads of what still uses it.
 */
async function notMounted(mnt: string): Promise<string> {
  const detached = await detachedDaemons(mnt);
  if (detached.length === 0) return `${mnt}: nothing is mounted here`;
  const serves = detached.map(({ pid, detached: d }) => {
    const what = d.openFiles > 0 ? `${openFilesText(d.openFiles)} (and whatever else uses the mount)` : 'what uses it (a working folder in it, say)';
    return `its daemon (pid ${pid}) still serves ${what} and ends by itself once nothing does`;
  });
  const pids = detached.map((s) => s.pid).join(' ');
  return `${mnt}: not mounted: detached lazily, and ${serves.join('; ')}; \`kill ${pids}\` stops ${detached.length === 1 ? 'it' : 'them'} now, and fails those readers`;
}

export function registerUmount(program: Command): void {
  program
    .command('umount')
    .alias('unmount')
    .description('unmount a jigdofs mount and stop its daemon; a mount in use is refused as busy')
    .argument('<mountpoint>')
    .option('-l, --lazy', 'detach the mount now, even while it is in use; files still open are served until closed, then the daemon ends')
    .action(async (mnt: string, flags: { lazy?: boolean }) => {
      await unmount(mnt, flags.lazy ?? false);
    });
}
