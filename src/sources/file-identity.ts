/** A file's identity (FileIdentity): what says, without reading it, that a file is the one hashed before (hash-index.ts keeps it). */
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { fsPath } from '../format/byte-string.js';
import { blockDeviceMedium } from '../util/block-device.js';
import { eachLimit } from '../util/each-limit.js';

/**
 * What tells, without reading a file, that its bytes are those we hashed. Size and mtime alone are not
 * enough: `touch -r` (and tools that keep mtimes) put back the mtime after an edit. The ctime cannot be
 * set by users and changes on every write, chmod, link or utimes; inode and device change when the file
 * is replaced or the path now leads elsewhere.
 */
export interface FileIdentity {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
  /**
   * A block device only (a disc in its drive, a loop device: `--scan /dev/sr0`): the medium in it
   * (blockDeviceMedium), since the node's own fields stay the same when a disc is swapped; `size` is then the
   * device's, from sysfs (stat says 0). Undefined for every other file.
   */
  medium?: string;
}

export function identityOf(st: FileIdentity): FileIdentity {
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev, ...(st.medium === undefined ? {} : { medium: st.medium }) };
}

/** The identity of the file `st` describes now: for a block device, with its size and medium read from sysfs. */
export async function identityOfStats(st: Stats): Promise<FileIdentity> {
  if (!st.isBlockDevice()) return identityOf(st);
  return { ...identityOf(st), ...(await blockDeviceMedium(st.rdev)) };
}

/** A block device `st` still holds the medium of `id`, at the same size, and is the same node (a gone medium: false). */
export async function sameMedium(st: Stats, id: FileIdentity): Promise<boolean> {
  const now = st.isBlockDevice() ? await identityOfStats(st).catch(() => undefined) : undefined;
  return now !== undefined && sameIdentity(id, now);
}

/** Same file, unchanged (a device: the same medium). A field missing (an index entry of an older version) is never the same. */
export function sameIdentity(a: Partial<FileIdentity>, b: FileIdentity): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino && a.dev === b.dev && a.medium === b.medium;
}

/** The size of a copy's file if it is still there with the identity it had; undefined if it is gone or replaced. */
export async function unchangedSize(copy: Partial<FileIdentity> & { path: string }): Promise<number | undefined> {
  const st = await stat(fsPath(copy.path)).catch(() => undefined); // a user's file name may hold non-UTF-8 bytes
  const now = st && (await identityOfStats(st).catch(() => undefined));
  return now && sameIdentity(copy, now) ? now.size : undefined;
}

/** Runs `fn` on each copy still there with the identity it had (one gone or replaced is skipped), 8 at a time. */
export async function eachUnchanged<C extends Partial<FileIdentity> & { path: string }>(copies: C[], fn: (copy: C, st: Stats) => Promise<unknown>): Promise<void> {
  await eachLimit(copies, 8, async (c) => {
    const st = await stat(c.path).catch(() => undefined);
    if (st && sameIdentity(c, st)) await fn(c, st).catch(() => undefined);
  });
}
