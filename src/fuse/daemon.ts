import { stat } from 'node:fs/promises';
import path from 'node:path';
import Fuse from 'fuse-native';
import { errorMessage } from '../format/errors.js';
import { openImage, type ImageSession, type SourceOptions } from '../image/open.js';
import type { JigdoFile } from '../format/jigdo.js';
import { askControl, serveControl } from './control.js';
import { imageOps, type MountedImage } from './filesystem.js';
import { fusermountUnmount, isStale, mountedType } from './mounts.js';

export interface MountOptions {
  allowOther: boolean;
  log: (line: string) => void;
  /** Extra status fields (e.g. network statistics), added by the layers that have them. */
  extraStatus?: () => unknown | Promise<unknown>;
}

export const FS_TYPE = 'fuse.jigdofs';

/**
 * Makes `mnt` usable: refuses a live mount, clears a stale one (a daemon killed with -9 leaves
 * "Transport endpoint is not connected"), and requires an existing directory.
 */
export async function prepareMountpoint(mnt: string, log: (line: string) => void): Promise<void> {
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
  const st = await stat(mnt).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${mnt}: mountpoint ${err.code === 'ENOENT' ? 'does not exist' : `cannot be used (${err.code})`}`);
  });
  if (!st.isDirectory()) throw new Error(`${mnt}: mountpoint is not a directory`);
}

/** Unique file names for the images (two [Image]s may share a basename). */
function nameImages(sessions: ImageSession[]): Map<string, ImageSession> {
  const out = new Map<string, ImageSession>();
  for (const s of sessions) {
    let name = s.name;
    for (let i = 2; out.has(name); i++) name = `${s.name}.${i}`;
    out.set(name, s);
  }
  return out;
}

export async function statusOf(mnt: string, images: Map<string, MountedImage>, startedAt: number, extra?: () => unknown): Promise<unknown> {
  const network = extra ? await extra() : undefined;
  return {
    mountpoint: mnt,
    pid: process.pid,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
    rssBytes: process.memoryUsage().rss,
    images: [...images].map(([name, { session: s }]) => {
      const counts = s.parts.counts();
      return {
        name,
        size: s.layout.size,
        jigdo: s.jigdo.location.kind === 'file' ? s.jigdo.location.path : s.jigdo.location.url,
        template: s.templatePath,
        parts: {
          total: counts.total,
          local: counts.byProvider.local ?? 0,
          verified: counts.verified,
          missing: counts.missing,
          failed: counts.failed,
          inFlight: counts.inFlight,
          byProvider: counts.byProvider,
        },
        bytesServed: s.reader.stats.bytesServed,
        reads: s.reader.stats.reads,
        readErrors: s.reader.stats.errors,
        cacheHits: { readahead: s.reader.stats.readaheadHits, templateChunks: s.raw.stats.cacheHits, hashIndex: s.index.stats.hits },
        templateBytesInflated: s.raw.stats.bytesInflated,
        partBytesRead: s.parts.stats.bytesRead,
        recentErrors: s.parts.recentErrors,
      };
    }),
    ...(extra ? { network } : {}),
  };
}

/**
 * Runs a mount in this process until it is unmounted (`jigdofs umount`, fusermount -u, SIGINT/SIGTERM).
 * `onReady` is called once the kernel has the mount.
 */
export async function runMount(
  jigdo: JigdoFile,
  mntArg: string,
  sources: SourceOptions,
  opts: MountOptions,
  onReady: (names: string[]) => void,
): Promise<void> {
  const mnt = path.resolve(mntArg);
  const { log } = opts;
  await prepareMountpoint(mnt, log);
  const startedAt = Date.now();
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

  const fuse = new Fuse(mnt, imageOps(images, log, new Date(startedAt)), {
    timeout: false, // we answer every read ourselves; fuse-native's 15 s default would answer ETIMEDOUT
    kernelCache: true, // the image never changes: re-reads come from the page cache
    fsname: 'jigdofs,ro',
    subtype: 'jigdofs',
    allowOther: opts.allowOther,
  });
  await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(new Error(`${mnt}: mount failed: ${err.message}`)) : resolve())));

  let stopping: Promise<void> | undefined;
  const stop = (why: string): Promise<void> =>
    (stopping ??= (async () => {
      log(`unmounting ${mnt} (${why})`);
      await new Promise<void>((resolve) => fuse.unmount(() => resolve()));
      if (await mountedType(mnt)) await fusermountUnmount(mnt, true).catch(() => undefined);
      await Promise.all(sessions.map((s) => s.close().catch(() => undefined)));
    })());

  const control = await serveControl(mnt, async ({ op }) => {
    if (op === 'ping') return 'pong';
    if (op === 'status') return statusOf(mnt, images, startedAt, opts.extraStatus);
    if (op === 'unmount') {
      setImmediate(() => void stop('jigdofs umount'));
      return { unmounting: true, pid: process.pid }; // umount waits for this process to end
    }
    throw new Error(`unknown request ${op}`);
  });

  const done = new Promise<void>((resolve) => {
    const finish = (why: string) => void stop(why).then(resolve);
    process.once('SIGINT', () => finish('SIGINT'));
    process.once('SIGTERM', () => finish('SIGTERM'));
    process.once('SIGHUP', () => finish('SIGHUP'));
    // An outside `fusermount -u` ends the kernel side without telling us: notice it and exit.
    const watch = setInterval(() => {
      void mountedType(mnt).then((type) => {
        if (type !== FS_TYPE) {
          clearInterval(watch);
          finish('unmounted from outside');
        }
      });
    }, 1000);
    void stopping?.then(() => clearInterval(watch));
    const poll = setInterval(() => {
      if (stopping) {
        clearInterval(poll);
        clearInterval(watch);
        void stopping.then(resolve);
      }
    }, 200);
  });
  // A daemon must not die of one bad request: log stray rejections; an uncaught exception unmounts cleanly.
  process.on('unhandledRejection', (err) => log(`internal error (ignored): ${errorMessage(err)}`));
  process.on('uncaughtException', (err) => {
    log(`fatal internal error: ${err.stack ?? err.message}`);
    void stop('fatal error').finally(() => process.exit(1));
  });
  log(`mounted ${[...images.keys()].join(', ')} at ${mnt}`);
  onReady([...images.keys()]);
  await done;
  control.close();
  log(`unmounted ${mnt}`);
}
