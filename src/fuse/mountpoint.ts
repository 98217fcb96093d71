import { askControl } from './control-client.js';
import { checkedControlDir } from './control-files.js';
import { daemonPid, FS_TYPE } from './mount-source.js';
import { allowOtherProblem, fusermountUnmount, mountHealth, mountpointProblem, mountsAt, type MountEntry, type MountHealth } from './mounts.js';

/**
 * The mountpoint checks made before a mount, apart from the daemon (fuse/daemon.ts): the parent of a
 * background mount runs them without loading fuse-native or the engine, so `jigdofs mount` starts sooner.
 */

/**
 * Makes `mnt` (a resolved path: see resolveMountpoint) usable: the control socket folder must be ours,
 * `--allow-other` allowed; refuses a live mount, clears a stale one (a daemon killed with -9 leaves
 * "Transport endpoint is not connected"), and requires an existing empty directory. Each refusal is
 * one line naming the file and what to do, where fuse itself says only "fuse failed".
 */
export async function prepareMountpoint(mnt: string, log: (line: string) => void, opts: { allowOther?: boolean } = {}): Promise<void> {
  checkedControlDir(true);
  const allowOther = opts.allowOther ? await allowOtherProblem() : undefined;
  if (allowOther) throw new Error(allowOther);
  const top = (await mountsAt(mnt)).at(-1);
  if (top) {
    const health = await mountHealth(mnt, top);
    if (health !== 'stale') throw new Error(await liveMountProblem(mnt, top, health));
    log(`clearing stale mount at ${mnt}`);
    await fusermountUnmount(mnt, true);
  }
  const problem = await mountpointProblem(mnt);
  if (problem) throw new Error(problem);
}

/**
 * Why a mount that something still serves cannot be mounted over. A jigdofs mount is never detached from here, even
 * when its control socket does not answer us: it may be under another XDG_RUNTIME_DIR (a boot-time fstab mount's,
 * seen from a login shell), and its daemon may be stopped (Ctrl-Z) rather than gone.
 */
async function liveMountProblem(mnt: string, top: MountEntry, health: Exclude<MountHealth, 'stale'>): Promise<string> {
  if (top.type !== FS_TYPE) return `${mnt}: something else (${top.type}) is mounted here`;
  if (health !== 'serving') return `${mnt}: a jigdofs image is mounted here and ${daemonState(mnt, top, health)}`;
  const answers = await askControl(mnt, 'ping', 2000).then(() => true, () => false);
  if (answers) return `${mnt}: a jigdofs image is already mounted here (jigdofs umount ${mnt})`;
  return `${mnt}: a jigdofs image is mounted here, and ${daemonText(top)} has no control socket here (mounted with another XDG_RUNTIME_DIR?); unmount it first (jigdofs umount ${mnt})`;
}

/**
 * Why the jigdofs mount at `mnt` cannot answer (its daemon stopped, frozen, stuck or gone: `stale`), in one line: a
 * control request to it would wait for nothing. Undefined when its daemon serves, or no jigdofs mount is there.
 */
export async function unservedMountProblem(mnt: string): Promise<{ message: string; stale: boolean } | undefined> {
  const top = (await mountsAt(mnt)).at(-1);
  if (top?.type !== FS_TYPE) return undefined;
  const health = await mountHealth(mnt, top);
  if (health === 'serving') return undefined;
  if (health === 'stale') return { message: `${mnt}: ${daemonText(top)} is gone: the mount is stale (jigdofs umount ${mnt} removes it)`, stale: true };
  return { message: `${mnt}: ${daemonState(mnt, top, health)}`, stale: false };
}

/** "its daemon (pid N)", or without the pid when the mount's source does not name it. */
export function daemonText(top: MountEntry): string {
  const pid = daemonPid(top.source);
  return pid === undefined ? 'its daemon' : `its daemon (pid ${pid})`;
}

/** The state of a jigdofs mount's daemon that does not answer, and what to do. */
function daemonState(mnt: string, top: MountEntry, health: 'stopped' | 'frozen' | 'unresponsive'): string {
  const daemon = daemonText(top);
  if (health === 'stopped') return `${daemon} is stopped (kill -CONT ${daemonPid(top.source)}, or jigdofs umount ${mnt})`;
  if (health === 'frozen') return `${daemon} is frozen by its cgroup (thaw it: docker unpause, systemctl thaw; or jigdofs umount ${mnt})`;
  return `${daemon} does not answer (stuck?); unmount it first (jigdofs umount ${mnt})`;
}
