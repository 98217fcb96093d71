import type { DropBehind } from './drop-behind.js';
import { watchConnection, type OpenFiles } from './open-files.js';

/** What `status` says of a daemon whose mount was detached lazily and that still serves it. */
export interface DetachedStatus {
  /** When the daemon learnt of the detach (ISO 8601). */
  since: string;
  /** How it was detached: `jigdofs umount --lazy`, `unmounted from outside`. */
  why: string;
  /** The files open on it now (OpenFiles: a working folder in it, say, is not counted, and is served all the same). */
  openFiles: number;
}

/** A mount's detach (detachHandler). */
export interface Detacher {
  /** Called when the daemon learns of the detach; returns how many files were open then. Later calls change nothing. */
  detach(why: string): number;
  /** Undefined while the mount is attached. */
  status(): DetachedStatus | undefined;
}

/**
 * What the daemon does once its mount is detached (`umount -l`, `fusermount -uz`, `jigdofs umount --lazy`; also a
 * `fusermount -u` that found nothing open), as umount(8) has it for a lazy unmount: the mount is served as long as
 * anything still uses it (a file open: a cp, a loop device, an mmap; a shell's working folder; a bind mount of it), and
 * the kernel says when that ends: it ends the connection, and libfuse closes /dev/fuse (watchConnection). The files
 * open (OpenFiles) are only counted for the log, `status` and `umount --lazy`'s answer; counting them to decide cut off
 * a shell in the folder and a reader whose open flags looked like the drops' own. Only where the /dev/fuse descriptor
 * could not be found does the count decide. A second call (the outside watch after our own detach) changes nothing.
 * The drops stop: the image's path no longer leads to this mount. The control socket moves to a name of this daemon's
 * own (`detachControl`: ControlServer.detach): the path's name is free for the next mount there, and `status` of the
 * path still finds this daemon, which may serve a loop device for days. A signal still stops the daemon at once.
 */
export function detachHandler(
  mnt: string,
  log: (line: string) => void,
  openFiles: OpenFiles,
  drops: DropBehind[],
  detachControl: () => void,
  fuseFds: () => number[],
  stop: (why: string) => Promise<void>,
): Detacher {
  let detached: { open: number; since: Date; why: string } | undefined;
  const detach = (why: string): number => {
    if (detached) return detached.open;
    const open = openFiles.count;
    detached = { open, since: new Date(), why };
    for (const d of drops) void d.stop();
    detachControl();
    const fds = fuseFds();
    if (open > 0) log(`${mnt} detached (${why}); serving ${open} open ${open === 1 ? 'file' : 'files'} until they are closed`);
    if (fds.length > 0) {
      watchConnection(fds, () => void stop(open > 0 ? `${why}; the last open file was closed` : why), 250);
    } else if (open === 0) setImmediate(() => void stop(why));
    else void openFiles.whenNoneOpen().then(() => stop(`${why}; the last open file was closed`));
    return open;
  };
  const status = (): DetachedStatus | undefined =>
    detached && { since: detached.since.toISOString(), why: detached.why, openFiles: openFiles.count };
  return { detach, status };
}
