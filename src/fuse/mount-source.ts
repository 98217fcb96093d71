import type { MountEntry } from './mounts.js';

/** The type of every jigdofs mount in /proc/mounts (`-o subtype=jigdofs`). */
export const FS_TYPE = 'fuse.jigdofs';

/**
 * The source (fsname) of a daemon's mount: `jigdofs-PID`. It tells a mount from another made later on the same path
 * (a daemon that learns late that its own was detached must leave the new one alone), and names the process that
 * serves it, so a look at a mount whose daemon is stopped or gone need not wait on the mount itself. No `:` in it:
 * df and findmnt take `host:path` sources for network file systems.
 */
export function daemonMount(pid = process.pid): MountEntry {
  return { source: `jigdofs-${pid}`, type: FS_TYPE };
}

/** The pid a mount's source names (daemonMount), or undefined for any other source. */
export function daemonPid(source: string): number | undefined {
  const m = /^jigdofs-([1-9]\d{0,9})$/.exec(source);
  return m ? Number(m[1]) : undefined;
}
