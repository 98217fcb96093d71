import type { Ops, Stat } from 'fuse-native';
import { Fuse } from './fuse-class.js';
import { UnavailableError, errorMessage } from '../format/errors.js';
import type { ImageSession } from '../engine/session.js';
import { OpenFiles } from './open-files.js';

/** What the mount presents: one read-only file per image, in a read-only root directory. */
export interface MountedImage {
  session: ImageSession;
  mtime: Date;
}

const O_ACCMODE = 3;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

/**
 * The FUSE operations. Every read is answered asynchronously from the image reader (which never blocks
 * the event loop); a part no source can give answers EIO with one log line, and the rest of the image
 * stays readable. Opens and releases (of files and of the folder) are counted in `openFiles`.
 */
export function imageOps(images: Map<string, MountedImage>, log: (line: string) => void, mountedAt: Date, openFiles = new OpenFiles()): Ops {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const dirStat = (): Stat => ({ mode: S_IFDIR | 0o555, uid, gid, size: 4096, nlink: 2, atime: mountedAt, mtime: mountedAt, ctime: mountedAt });
  const fileStat = (img: MountedImage): Stat => {
    const size = img.session.layout.size;
    return { mode: S_IFREG | 0o444, uid, gid, size, nlink: 1, blksize: 4096, blocks: Math.ceil(size / 512), atime: img.mtime, mtime: img.mtime, ctime: img.mtime };
  };
  const lookup = (path: string): MountedImage | undefined => images.get(path.slice(1));
  let nextFd = 1;

  return {
    getattr(path, cb) {
      if (path === '/') return cb(0, dirStat());
      const img = lookup(path);
      if (!img) return cb(Fuse.ENOENT);
      cb(0, fileStat(img));
    },
    readdir(path, cb) {
      if (path !== '/') return cb(Fuse.ENOTDIR);
      const names = [...images.keys()];
      cb(0, names, names.map((n) => fileStat(images.get(n)!)));
    },
    open(path, flags, cb) {
      if (path === '/') return cb(Fuse.EISDIR);
      if (!lookup(path)) return cb(Fuse.ENOENT);
      if ((flags & O_ACCMODE) !== 0) return cb(Fuse.EROFS);
      const fh = nextFd++;
      openFiles.opened(fh, flags);
      cb(0, fh);
    },
    release(_path, fd, cb) {
      openFiles.released(fd);
      cb(0);
    },
    opendir(path, _flags, cb) {
      if (path !== '/') return cb(Fuse.ENOTDIR);
      const fh = nextFd++;
      openFiles.opened(fh, 0);
      cb(0, fh);
    },
    releasedir(_path, fd, cb) {
      openFiles.released(fd);
      cb(0);
    },
    read(path, _fd, buf, len, pos, cb) {
      const img = lookup(path);
      if (!img) return cb(Fuse.ENOENT);
      // Straight into fuse-native's buffer (measured: a buffer per request and the extra copy cost about
      // as much CPU as the rest of the read path). The mount has no per-operation timeout, so the buffer
      // stays attached until we answer.
      img.session.reader.readTo(pos, buf.subarray(0, Math.min(len, buf.length))).then(
        (n) => cb(buf.length === 0 ? Fuse.EIO : n),
        (err: unknown) => {
          // The part store already logged an unavailable part, once per part: do not flood the log.
          if (!(err instanceof UnavailableError)) log(`read ${path} bytes ${pos}..${pos + len - 1}: EIO: ${errorMessage(err)}`);
          cb(Fuse.EIO);
        },
      );
    },
    statfs(_path, cb) {
      let bytes = 0;
      for (const img of images.values()) bytes += img.session.layout.size;
      const blocks = Math.ceil(bytes / 4096);
      cb(0, { bsize: 4096, frsize: 4096, blocks, bfree: 0, bavail: 0, files: images.size + 1, ffree: 0, favail: 0, fsid: 0, flag: 1, namemax: 255 });
    },
  };
}
