#!/usr/bin/env node
// trivial-fuse.mjs — the baseline for FUSE read benchmarks: one read-only file of SIZE bytes whose reads
// are answered synchronously with bytes copied from a preallocated 16 MiB buffer (no I/O, no hashing).
// It is what any Node FUSE server can do at best through fuse-native, on this machine, right now.
//
// Usage: node scripts/trivial-fuse.mjs MOUNTPOINT SIZE [--name FILE] [--no-kernel-cache]
//   Mounts MOUNTPOINT/FILE (default "image") with the same options as the jigdofs daemon (timeout: false,
//   kernelCache: true unless --no-kernel-cache), prints "pid PID" once the mount call returned and stays
//   until SIGINT/SIGTERM (it unmounts then). Wait for the file to appear before reading it: the mount
//   callback fires before the kernel serves the mount (platform notes).
import { createRequire } from 'node:module';
import { randomFillSync } from 'node:crypto';
import { takeFlag, takeOption } from './cli-args.mjs';

const require = createRequire(new URL('../package.json', import.meta.url));
const Fuse = require('fuse-native');

const args = process.argv.slice(2);
const flag = (name) => takeFlag(args, name);
const option = (name, dflt) => takeOption(args, name, dflt);
const kernelCache = !flag('--no-kernel-cache');
const name = option('--name', 'image');
const [mnt, sizeArg] = args;
if (!mnt || !sizeArg) {
  process.stderr.write('usage: trivial-fuse.mjs MOUNTPOINT SIZE [--name FILE] [--no-kernel-cache]\n');
  process.exit(2);
}
const size = Number(sizeArg);
if (!Number.isSafeInteger(size) || size < 0) throw new Error(`bad size ${sizeArg}`);

const PATTERN = 16 << 20;
const pattern = randomFillSync(Buffer.allocUnsafe(PATTERN));
const now = new Date();
const uid = process.getuid();
const gid = process.getgid();
const dirStat = { mode: 0o040555, uid, gid, size: 4096, nlink: 2, atime: now, mtime: now, ctime: now };
const fileStat = { mode: 0o100444, uid, gid, size, nlink: 1, blksize: 4096, blocks: Math.ceil(size / 512), atime: now, mtime: now, ctime: now };
const file = `/${name}`;

const ops = {
  getattr(path, cb) {
    if (path === '/') return cb(0, dirStat);
    if (path === file) return cb(0, fileStat);
    cb(Fuse.ENOENT);
  },
  readdir(path, cb) {
    if (path !== '/') return cb(Fuse.ENOTDIR);
    cb(0, [name], [fileStat]);
  },
  open(path, _flags, cb) {
    cb(path === file ? 0 : Fuse.ENOENT, 1);
  },
  release(_path, _fd, cb) {
    cb(0);
  },
  read(path, _fd, buf, len, pos, cb) {
    if (path !== file) return cb(Fuse.ENOENT);
    const n = Math.max(0, Math.min(len, size - pos, buf.length));
    let done = 0;
    while (done < n) {
      const at = (pos + done) % PATTERN;
      done += pattern.copy(buf, done, at, Math.min(PATTERN, at + n - done));
    }
    cb(n);
  },
};

const fuse = new Fuse(mnt, ops, { timeout: false, kernelCache, fsname: 'trivialfuse,ro', subtype: 'trivialfuse', force: true });
fuse.mount((err) => {
  if (err) {
    process.stderr.write(`trivial-fuse: mount failed: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`pid ${process.pid}\n`);
});
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  fuse.unmount(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
