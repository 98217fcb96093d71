/** The parts of fuse-native@2.2.6 that jigdofs uses (the package ships no types). */
declare module 'fuse-native' {
  type Cb<T = void> = T extends void ? (err: number) => void : (err: number, value?: T) => void;
  export interface Stat {
    mode: number;
    uid?: number;
    gid?: number;
    size: number;
    nlink?: number;
    ino?: number;
    blksize?: number;
    blocks?: number;
    atime: Date;
    mtime: Date;
    ctime: Date;
  }
  export interface StatFs {
    bsize: number;
    frsize: number;
    blocks: number;
    bfree: number;
    bavail: number;
    files: number;
    ffree: number;
    favail: number;
    fsid: number;
    flag: number;
    namemax: number;
  }
  export interface Ops {
    init?(cb: (err: number) => void): void;
    getattr?(path: string, cb: (err: number, stat?: Stat) => void): void;
    readdir?(path: string, cb: (err: number, names?: string[], stats?: Stat[]) => void): void;
    open?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
    release?(path: string, fd: number, cb: (err: number) => void): void;
    opendir?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
    releasedir?(path: string, fd: number, cb: (err: number) => void): void;
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void;
    statfs?(path: string, cb: (err: number, statfs?: StatFs) => void): void;
    access?(path: string, mode: number, cb: (err: number) => void): void;
  }
  export interface Options {
    force?: boolean;
    mkdir?: boolean;
    timeout?: number | false;
    allowOther?: boolean;
    autoUnmount?: boolean;
    kernelCache?: boolean;
    fsname?: string;
    subtype?: string;
    debug?: boolean;
    maxRead?: number;
    attrTimeout?: number;
    entryTimeout?: number;
  }
  export default class Fuse {
    constructor(mnt: string, ops: Ops, opts?: Options);
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    static readonly EIO: number;
    static readonly ENOENT: number;
    static readonly EROFS: number;
    static readonly EISDIR: number;
    static readonly ENOTDIR: number;
    static readonly EACCES: number;
    static readonly EBADF: number;
  }
  export type { Cb };
}
