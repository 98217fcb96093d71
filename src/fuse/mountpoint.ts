import { askControl, checkedControlDir } from './control.js';
import { allowOtherProblem, fusermountUnmount, isStale, mountedType, mountpointProblem } from './mounts.js';

/**
 * The mountpoint checks made before a mount, apart from the daemon (fuse/daemon.ts): the parent of a
 * background mount runs them without loading fuse-native or the engine, so `jigdofs mount` starts sooner.
 */

export const FS_TYPE = 'fuse.jigdofs';

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
  const type = await mountedType(mnt);
  if (type && (await isStale(mnt))) {
    log(`clearing stale mount at ${mnt}`);
    await fusermountUnmount(mnt, true);
  } else if (type === FS_TYPE) {
    const alive = await askControl(mnt, 'ping', 2000).then(() => true, () => false);
    if (alive) throw new Error(`${mnt}: a jigdofs image is already mounted here (jigdofs umount ${mnt})`);
    log(`clearing orphaned mount at ${mnt}`);
    await fusermountUnmount(mnt, true);
  } else if (type) {
    throw new Error(`${mnt}: something else (${type}) is mounted here`);
  }
  const problem = await mountpointProblem(mnt);
  if (problem) throw new Error(problem);
}
