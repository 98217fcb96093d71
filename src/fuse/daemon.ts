import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Fuse, unmountOnlyOwn } from './fuse-class.js';
import { errorMessage } from '../format/errors.js';
import { openImage, type ImageSession, type SourceOptions } from '../engine/session.js';
import type { JigdoFile } from '../format/jigdo.js';
import { shown } from '../format/byte-string.js';
import { serveControl, type ControlHandler, type ControlServer } from './control.js';
import { prepareMountpoint } from './mountpoint.js';
import { daemonMount } from './mount-source.js';
import { imageOps, type MountedImage } from './filesystem.js';
import { DROP_WAIT_MS, DropBehind } from './drop-behind.js';
import { kernelReadAhead, readAheadFile, reorderWindow } from './kernel-read-ahead.js';
import { WorkerPool } from '../util/worker-pool.js';
import { fuseFailureHint, fusermountUnmount, mountPlace, resolveMountpoint, topMountIs, watchUnmount } from './mounts.js';
import { sessionStatus } from '../engine/session-status.js';
import { armExitWatchdog } from '../util/exit-watchdog.js';
import { settledWithin } from '../util/settle.js';
import { onEndingSignal } from '../util/signals.js';
import { fuseDeviceFds, OpenFiles } from './open-files.js';
import { detachHandler, type Detacher } from './detach.js';
import { uniqueNames } from '../util/unique-names.js';

export interface MountOptions {
  allowOther: boolean;
  /** Reads go to the daemon without the kernel's page cache (`--direct-io`; see newFuse). */
  directIo?: boolean;
  log: (line: string) => void;
  /** Extra status fields (e.g. network statistics), added by the layers that have them. */
  extraStatus?: () => unknown | Promise<unknown>;
}

export { prepareMountpoint };

/**
 * Unique file names for the images (two [Image]s may share a basename). A name whose bytes are not UTF-8
 * (`Filename=d\xefsc.img` in Latin-1) is shown as its `\xNN` text: fuse-native passes names to and from
 * libfuse only as UTF-8 strings, so the byte itself would come out as U+FFFD, listed but never found again.
 */
function nameImages(sessions: ImageSession[]): Map<string, ImageSession> {
  const names = uniqueNames(sessions.map((s) => shown(s.name)));
  return new Map(sessions.map((s, i) => [names[i]!, s]));
}

async function statusOf({ mnt, images, startedAt, opts, detacher }: MountContext): Promise<unknown> {
  const extra = opts.extraStatus;
  const network = extra ? await extra() : undefined;
  return {
    mountpoint: mnt,
    pid: process.pid,
    directIo: opts.directIo ?? false,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
    rssBytes: process.memoryUsage().rss,
    images: [...images].map(([name, { session }]) => sessionStatus(name, session)),
    detached: detacher.status(), // (left out of the JSON while mounted)
    ...(extra ? { network } : {}),
  };
}

/** Opens every image of the .jigdo (closing those already open when one fails) and names their files. */
async function openImages(jigdo: JigdoFile, sources: SourceOptions, startedAt: number, log: (line: string) => void): Promise<Map<string, MountedImage>> {
  const sessions: ImageSession[] = [];
  try {
    for (const image of jigdo.images) sessions.push(await openImage(jigdo, image, { ...sources, logMissing: true }));
  } catch (err) {
    await Promise.all(sessions.map((s) => s.close()));
    throw err;
  }
  const images = new Map<string, MountedImage>();
  for (const [name, session] of nameImages(sessions)) {
    const mtime = await stat(session.templatePath).then((st) => st.mtime, () => new Date(startedAt));
    images.set(name, { session, mtime });
    void session.local.scan().catch((err: unknown) => log(`scan failed: ${errorMessage(err)}`)); // index local files now, not at the first read
  }
  return images;
}

/** fuse-native's own error is "fuse failed" whatever went wrong: say where to look. */
async function mountFuse(fuse: Fuse, mnt: string): Promise<void> {
  const err = await new Promise<Error | null>((resolve) => fuse.mount((e) => resolve(e ?? null)));
  if (!err) return;
  const hint = /fuse failed/i.test(err.message) ? ` (${await fuseFailureHint()})` : '';
  throw new Error(`${mnt}: mount failed: ${err.message}${hint}`);
}

/** What a mount's control requests answer from and act on. */
interface MountContext {
  mnt: string;
  images: Map<string, MountedImage>;
  startedAt: number;
  opts: MountOptions;
  drops: DropBehind[];
  stop: (why: string) => Promise<void>;
  detacher: Detacher;
  /** Mounted, and not stopping: before (the socket listens first) and after, the mount's absence is no detach. */
  serving: () => boolean;
}

/**
 * The control requests of a mount. `unmount` is non-lazy unless asked: like umount(8), a busy mount
 * (a cp still reading it) is refused with "busy" and stays, instead of being detached under the reader. A lazy one
 * detaches the mount, which is served as long as anything uses it (`detach`): the answer says how many files were
 * open (`open`).
 */
function controlHandler(ctx: MountContext): ControlHandler {
  const { mnt, drops, stop } = ctx;
  const detach = (why: string) => ctx.detacher.detach(why);
  return async ({ op, lazy }) => {
    if (op === 'ping') return 'pong';
    if (op === 'status') {
      // Detached from outside (umount -l) and not seen yet by the watch (each second): the status says so already.
      if (ctx.serving() && mountPlace(mnt, daemonMount()) === 'gone') detach('unmounted from outside');
      return statusOf(ctx);
    }
    if (op === 'unmount') {
      if (lazy) {
        // Not a mount made over ours, nor one made since ours went.
        if (topMountIs(mnt, daemonMount()) !== false) await fusermountUnmount(mnt, true);
        return { unmounting: true, pid: process.pid, open: detach('jigdofs umount --lazy') };
      }
      await Promise.all(drops.map((d) => d.pause())); // a drop's own open of the image would make the mount busy
      try {
        // Throws BusyError; once it succeeded nothing can be busy. Not a mount made over ours, nor one made since ours went.
        const place = mountPlace(mnt, daemonMount());
        if (place === 'covered') throw new Error(`${mnt}: another file system is mounted over it: unmount that first`);
        // Detached from outside meanwhile (umount -l): served until nothing uses it, as any detach.
        // (Not before the kernel mount: a request that comes while it is made would stop a daemon about to serve.)
        if (place === 'gone' && ctx.serving()) return { unmounting: true, pid: process.pid, open: detach('unmounted from outside') };
        await fusermountUnmount(mnt, false);
      } catch (err) {
        for (const d of drops) d.resume();
        throw err;
      }
      setImmediate(() => void stop('jigdofs umount'));
      return { unmounting: true, pid: process.pid, open: 0 }; // umount waits for this process to end
    }
    throw new Error(`unknown request ${op}`);
  };
}

/**
 * Resolves once the mount ends: a signal, `jigdofs umount`, or an outside unmount (`detach`: served as long as
 * anything uses it). A /proc/mounts that cannot be read (out of file descriptors) is no unmount: logged once, the next
 * look decides.
 */
function untilStopped(
  mnt: string,
  stop: (why: string) => Promise<void>,
  detach: (why: string) => number,
  stopping: () => Promise<void> | undefined,
  log: (line: string) => void,
): Promise<void> {
  return new Promise<void>((resolve) => {
    const finish = (why: string) => void stop(why).then(resolve);
    onEndingSignal(finish); // a second one, while the unmount runs, ends the process (signals.ts)
    let unknownLogged = false;
    const unwatch = watchUnmount(mnt, daemonMount(), () => void detach('unmounted from outside'), {
      onUnknown: (err) => {
        if (!unknownLogged) log(`cannot tell whether ${mnt} is still mounted (${err.message}); still serving`);
        unknownLogged = true;
      },
    });
    // Stopped by a control request, a detach whose files were closed (or a fatal error): resolve once the unmount is over.
    const poll = setInterval(() => {
      const stopped = stopping();
      if (!stopped) return;
      clearInterval(poll);
      unwatch();
      void stopped.then(resolve);
    }, 200);
  });
}

/**
 * The FUSE instance of a mount. By default the kernel keeps what was read in its page cache (`kernelCache`: the
 * image never changes), so re-reads and small reads never reach us: the kernel reads ahead 128 KiB at a time. (Except
 * behind a long sequential stream: dropBehindStreams.)
 * With `directIo` (libfuse's `direct_io`) every read(2) comes to the daemon as it was made and goes straight
 * into the reader's buffer: a whole-image `cp` no longer fills a second copy of the image into page-cache pages
 * (on this kind of VM, where fresh pages are expensive, 3.8-3.9 s instead of 5.9-8.4 s for the 2.1 GB fixture,
 * BENCHMARKS.md), but reads of 512 bytes cost a round trip each and a shared mmap of the image fails (ENODEV).
 * fuse-native 2.2.6 (pinned in package.json) has no option for it: its `_fuseOptions` builds the `-o` text, to which
 * fuseOptions adds ours.
 */
function newFuse(mnt: string, images: Map<string, MountedImage>, log: (line: string) => void, startedAt: number, opts: MountOptions, openFiles: OpenFiles): Fuse {
  const fuse = new Fuse(mnt, imageOps(images, log, new Date(startedAt), openFiles), {
    timeout: false, // we answer every read ourselves; fuse-native's 15 s default would answer ETIMEDOUT
    kernelCache: !opts.directIo, // the image never changes: re-reads come from the page cache
    fsname: `${daemonMount().source},ro`, // the source names this daemon (mount-source.ts); `,ro` makes the mount read-only
    subtype: 'jigdofs',
    allowOther: opts.allowOther,
  });
  const native = fuse as unknown as { _fuseOptions?: () => string };
  const options = native._fuseOptions?.bind(fuse);
  if (!options) throw new Error('this fuse-native has no _fuseOptions to add mount options to');
  native._fuseOptions = () => {
    const ours = fuseOptions(opts).join(',');
    const o = options();
    return o ? `${o},${ours}` : `-o${ours}`;
  };
  return fuse;
}

/**
 * How many reads the kernel hands the daemon at once without one of them answered. The page cache's reads (a
 * default mount's every read, through the kernel's read-ahead) go as background requests, of which the kernel
 * lets 12 wait by default: with 12 reads waiting for parts from a slow or hung mirror, every other buffered read of
 * the mount (template data, parts on disk, another image) queued behind them in the kernel until one was answered,
 * up to the network timeout. Each waiting read holds one of libfuse's threads, which it starts as needed; the kernel
 * lets a user's mount ask for up to `max_user_bgreq` (a module parameter: 7,866 on a 24 GB host).
 */
export const MAX_BACKGROUND_READS = 256;

/** The `-o` options we add to fuse-native's. */
export function fuseOptions(opts: Pick<MountOptions, 'directIo'>): string[] {
  return [...(opts.directIo ? ['direct_io'] : []), `max_background=${MAX_BACKGROUND_READS}`];
}

/**
 * Default mounts (the kernel caches the image's pages): each image's pages leave the page cache behind its long
 * sequential streams (drop-behind.ts). With `directIo` there are none to drop. A drop opens the image by its path,
 * and only drops a file on the mount's device (`device()`, known once mounted: none before): after a lazy detach
 * that path may be another mount's file, whose pages are not ours to drop.
 */
function dropBehindStreams(mnt: string, images: Map<string, MountedImage>, pool: WorkerPool | undefined, device: () => number | undefined): DropBehind[] {
  if (!pool) return [];
  return [...images].map(([name, { session }]) => {
    const drops = new DropBehind(path.join(mnt, name), async (file, range) => {
      const dev = device();
      if (dev !== undefined) await pool.dropPages([file], range, dev);
    });
    session.reader.watchStreams(drops.onStream);
    return drops;
  });
}

/**
 * The control socket, then the kernel mount: a mount is never up without a way to reach it. When either
 * fails, what was opened (the socket, the images) is closed before the error goes on.
 */
async function serveThenMount(mnt: string, fuse: Fuse, handler: ControlHandler, closeImages: () => Promise<unknown>): Promise<ControlServer> {
  let control: ControlServer;
  try {
    control = await serveControl(mnt, handler);
  } catch (err) {
    await closeImages();
    throw err;
  }
  try {
    await mountFuse(fuse, mnt);
  } catch (err) {
    control.close();
    await closeImages();
    throw err;
  }
  return control;
}

/** A daemon must not die of one bad request: log stray rejections; an uncaught exception unmounts cleanly. */
function guardDaemon(log: (line: string) => void, stop: (why: string) => Promise<void>): void {
  process.on('unhandledRejection', (err) => log(`internal error (ignored): ${errorMessage(err)}`));
  process.on('uncaughtException', (err) => {
    log(`fatal internal error: ${err.stack ?? err.message}`);
    void stop('fatal error').finally(() => process.exit(1));
  });
}

/**
 * Runs a mount in this process until it is unmounted (`jigdofs umount`, fusermount -u, SIGINT/SIGTERM), or, once
 * detached lazily, until nothing uses it any more (detachHandler).
 * `onReady` is called once the kernel has the mount. The control socket listens before the kernel mount,
 * so a mount can never be left up without a way to reach it; a failed mount leaves nothing mounted.
 */
export async function runMount(
  jigdo: JigdoFile,
  mntArg: string,
  sources: SourceOptions,
  opts: MountOptions,
  onReady: (names: string[]) => void,
): Promise<void> {
  const mnt = await resolveMountpoint(mntArg);
  const { log } = opts;
  await prepareMountpoint(mnt, log, { allowOther: opts.allowOther });
  const startedAt = Date.now();
  const images = await openImages(jigdo, sources, startedAt, log);
  const closeImages = () => Promise.all([...images.values()].map(({ session }) => session.close().catch(() => undefined)));
  const openFiles = new OpenFiles();
  const fuse = newFuse(mnt, images, log, startedAt, opts, openFiles);
  unmountOnlyOwn(mnt, () => topMountIs(mnt, daemonMount()) !== false); // (cannot tell: unmount, as before)
  // The drops' own thread (started at the first): their open of the image waits for a FUSE thread, and a read that
  // needs the sessions' pool (bzip2, hashing) must never queue behind one.
  const dropPool = opts.directIo ? undefined : new WorkerPool(1);
  let mountDevice: number | undefined;
  const drops = dropBehindStreams(mnt, images, dropPool, () => mountDevice);
  let stopped: Promise<void> | undefined;
  const controlSocket: { server?: ControlServer } = {}; // set once mounted; closed by stop as soon as the mount is gone
  const stop = (why: string): Promise<void> =>
    (stopped ??= (async () => {
      log(`unmounting ${mnt} (${why})`);
      armExitWatchdog(`${mnt}: the daemon`, 'unmounting');
      await Promise.all(drops.map((d) => d.stop()));
      await new Promise<void>((resolve) => fuse.unmount(() => resolve()));
      if (topMountIs(mnt, daemonMount())) await fusermountUnmount(mnt, true).catch(() => undefined);
      // The mount is gone: its name is free for the next mount on the path now, not once the images are closed
      // (up to the exit watchdog's 15 s when a source hangs).
      controlSocket.server?.close();
      await closeImages();
      // (A drop still waiting on the mount's open failed with it; bounded all the same.)
      if (dropPool) await settledWithin(dropPool.close(), DROP_WAIT_MS);
    })());
  let fuseFds: number[] = [];
  const detacher = detachHandler(mnt, log, openFiles, drops, () => controlSocket.server?.detach(), () => fuseFds, stop);
  const serving = () => controlSocket.server !== undefined && stopped === undefined;
  const context: MountContext = { mnt, images, startedAt, opts, drops, stop, detacher, serving };
  const control = await serveThenMount(mnt, fuse, controlHandler(context), closeImages);
  controlSocket.server = control;
  fuseFds = fuseDeviceFds();
  // The mount's own root, answered by this process (through libuv's pool, so the main thread is free to answer). Its
  // device also names the kernel's read-ahead for the mount, which says how far out of order a stream's reads come.
  if (dropPool) {
    void stat(mnt).then(
      (st) => {
        mountDevice = st.dev;
        const window = reorderWindow(kernelReadAhead(readAheadFile(st.dev)));
        for (const { session } of images.values()) session.reader.allowReordering(window);
      },
      () => undefined,
    );
  }
  guardDaemon(log, stop);
  log(`mounted ${[...images.keys()].join(', ')} at ${mnt}`);
  onReady([...images.keys()]);
  await untilStopped(mnt, stop, (why) => detacher.detach(why), () => stopped, log);
  control.close();
  log(`unmounted ${mnt}`);
}
