import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import type FuseNative from 'fuse-native';

/**
 * fuse-native's class, loaded with require(): the package is CommonJS, and an ES `import` of it first has Node
 * parse its source for the names it exports. Measured on the start-up host (BENCHMARKS.md, "Start-up: the spare
 * daemon"): require() 16.5–21.6 ms against 26.2–33.6 ms for import(), on the daemon's path to the mount.
 */
export const Fuse = createRequire(import.meta.url)('fuse-native') as typeof FuseNative;
export type Fuse = FuseNative;

/** Mountpoints this process mounted, with the test that the mount a look there reaches is still its own. */
const ownMounts = new Map<string, () => boolean>();

/**
 * From now on, fuse-native's unmount of `mnt` (see below) runs only while `stillOurs()`. A daemon that learns late
 * that its mount was detached (`fusermount -uz` while it was stopped, say) must not detach another mount made on the
 * same path since: fusermount unmounts whatever is at the path.
 */
export function unmountOnlyOwn(mnt: string, stillOurs: () => boolean): void {
  ownMounts.set(mnt, stillOurs);
}

/**
 * fuse-native unmounts (as a mount ends, and before mounting over a dead one) with `exec('fusermount -uz ' +
 * JSON.stringify(mnt))`: through a shell, to which JSON's quoting leaves `$(…)` and backquotes in a mountpoint's name
 * live (a folder may be named so; an fstab mount runs as root). The same command without a shell, and only on a mount
 * of ours (unmountOnlyOwn): one that is gone already is done.
 */
Fuse.unmount = (mnt: string, cb: (err: Error | null) => void): void => {
  if (ownMounts.get(mnt)?.() === false) {
    cb(null);
    return;
  }
  execFile('fusermount', ['-uz', mnt], (err) => cb(err));
};
