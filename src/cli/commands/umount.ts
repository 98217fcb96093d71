import path from 'node:path';
import type { Command } from 'commander';
import { askControl } from '../../fuse/control.js';
import { FS_TYPE } from '../../fuse/daemon.js';
import { fusermountUnmount, isStale, mountedType, sleep } from '../../fuse/mounts.js';
import { pidAlive } from '../../util/pid.js';

/**
 * Asks the daemon to unmount and waits for the mount to go, then for the daemon to end (it saves the hash
 * index and closes its log on the way out: a script that removes the cache right after must not race it);
 * falls back to fusermount.
 */
export async function unmount(mntArg: string): Promise<void> {
  const mnt = path.resolve(mntArg);
  const type = await mountedType(mnt);
  if (!type) throw new Error(`${mnt}: nothing is mounted here`);
  if (type !== FS_TYPE) throw new Error(`${mnt}: not a jigdofs mount (${type})`);
  if (await isStale(mnt)) {
    await fusermountUnmount(mnt, true);
    return;
  }
  const answer = await askControl(mnt, 'unmount', 3000).catch(() => undefined);
  if (answer !== undefined) {
    const pid = (answer as { pid?: unknown }).pid;
    for (let i = 0; i < 100; i++) {
      if (!(await mountedType(mnt))) {
        if (typeof pid === 'number') {
          for (let j = 0; j < 600 && pidAlive(pid); j++) await sleep(50);
          if (pidAlive(pid)) process.stderr.write(`jigdofs: ${mnt}: unmounted, but its daemon (pid ${pid}) is still finishing after 30 s\n`);
        }
        return;
      }
      await sleep(50);
    }
  }
  // No daemon answered (or it is stuck): unmount from outside; a busy mount says so.
  await fusermountUnmount(mnt, false);
}

export function registerUmount(program: Command): void {
  program
    .command('umount')
    .alias('unmount')
    .description('unmount a jigdofs mount and stop its daemon')
    .argument('<mountpoint>')
    .action(async (mnt: string) => {
      await unmount(mnt);
    });
}
