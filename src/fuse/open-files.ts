import { readdirSync, readlinkSync } from 'node:fs';

const O_NONBLOCK = 0o4000;
const O_DSYNC = 0o10000;
/** O_SYNC is this bit and O_DSYNC. */
const O_SYNC_ONLY = 0o4000000;

/**
 * The open(2) flags of the daemon's own opens of its image (the drops behind a stream, drop-behind.ts, through
 * util/page-cache.ts): O_NONBLOCK and O_DSYNC, which means nothing to a read-only descriptor, so no reader opens a
 * file with both (and without the rest of O_SYNC).
 */
export const OWN_OPEN_FLAGS = O_NONBLOCK | O_DSYNC;

/** Whether FUSE's open `flags` are those of the daemon's own open (OWN_OPEN_FLAGS). */
export const isOwnOpen = (flags: number): boolean => (flags & (OWN_OPEN_FLAGS | O_SYNC_ONLY)) === OWN_OPEN_FLAGS;

/**
 * The files and folders of a mount that someone holds open: FUSE's open/release and opendir/releasedir pairs, by
 * handle. The kernel sends a file's release only when its last reference goes, so a loop device, an mmap or a
 * descriptor shared by a fork count until all of them let go. The daemon's own opens (isOwnOpen) do not count. A
 * mount detached lazily says how many are open, and waits for them to close only where it cannot watch its
 * connection (detach.ts detachHandler).
 */
export class OpenFiles {
  private readonly held = new Set<number>();
  private waiting: Array<() => void> = [];

  /** An open (a folder's: flags 0) answered with handle `fh`. */
  opened(fh: number, flags: number): void {
    if (!isOwnOpen(flags)) this.held.add(fh);
  }

  released(fh: number): void {
    if (!this.held.delete(fh) || this.held.size > 0) return;
    for (const resolve of this.waiting.splice(0)) resolve();
  }

  get count(): number {
    return this.held.size;
  }

  /** Resolves once nothing is held open (at once when nothing is). */
  whenNoneOpen(): Promise<void> {
    if (this.held.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}

/**
 * The descriptors of /dev/fuse this process holds (looked at once mounted: libfuse's channel to the kernel), or none
 * when /proc/self/fd cannot be read.
 */
export function fuseDeviceFds(): number[] {
  try {
    return readdirSync('/proc/self/fd')
      .map(Number)
      .filter((fd) => fuseDevice(fd));
  } catch {
    return [];
  }
}

function fuseDevice(fd: number): boolean {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`) === '/dev/fuse';
  } catch {
    return false;
  }
}

/**
 * Calls `onEnded` once none of `fds` (fuseDeviceFds) is /dev/fuse any more, looking every `intervalMs`: libfuse closes
 * its channel when the kernel ended the connection. A detached mount's connection ends as its last reference goes
 * (the last file closed), and the kernel may end it before the daemon has read that file's release, which is then
 * never sent. Never calls it when `fds` is empty. Returns the function that stops looking.
 */
export function watchConnection(fds: number[], onEnded: () => void, intervalMs = 1000): () => void {
  if (fds.length === 0) return () => undefined;
  const timer = setInterval(() => {
    if (fds.some(fuseDevice)) return;
    clearInterval(timer);
    onEnded();
  }, intervalMs);
  return () => clearInterval(timer);
}
