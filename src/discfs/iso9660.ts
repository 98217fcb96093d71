import { decodeBytes } from '../format/byte-string.js';
import { MAX_DIRECTORY_BYTES, MAX_FILE_EXTENTS, plainName, type ListingContext } from './context.js';
import { readRockRidge, suspSkip } from './rock-ridge.js';
import { DiscFormatError, type DiscExtent } from './types.js';

/** ISO9660 (ECMA-119) with Joliet and Rock Ridge: the volume descriptors and the directory tree. */

export const SECTOR = 2048;
export const VD_START = 16 * SECTOR;
const MAX_DESCRIPTORS = 64;
const FLAG_DIR = 0x02;
const FLAG_ASSOCIATED = 0x04;
const FLAG_MULTI = 0x80;

export interface IsoVolumes {
  pvd: Buffer;
  pvdOffset: number;
  joliet?: Buffer;
}

/** True when the 2 KiB at `buf[at..]` is an ISO9660 volume descriptor (`CD001`, version 1). */
export function isIsoDescriptor(buf: Buffer, at = 0): boolean {
  return buf.length >= at + 7 && buf.toString('latin1', at + 1, at + 6) === 'CD001';
}

function isJoliet(svd: Buffer): boolean {
  return svd[88] === 0x25 && svd[89] === 0x2f && (svd[90] === 0x40 || svd[90] === 0x43 || svd[90] === 0x45);
}

/** The primary and the Joliet volume descriptors from sector 16 on, up to the terminator. */
export async function readIsoVolumes(ctx: ListingContext): Promise<IsoVolumes> {
  let pvd: Buffer | undefined;
  let pvdOffset = VD_START;
  let joliet: Buffer | undefined;
  for (let i = 0; i < MAX_DESCRIPTORS; i++) {
    const offset = VD_START + i * SECTOR;
    if (offset + SECTOR > ctx.size) break;
    const vd = await ctx.bytes(offset, SECTOR, 'ISO9660 volume descriptor');
    if (!isIsoDescriptor(vd) || vd[0] === 255) break;
    if (vd[0] === 1 && pvd === undefined) [pvd, pvdOffset] = [vd, offset];
    else if (vd[0] === 2 && joliet === undefined && isJoliet(vd)) joliet = vd;
  }
  if (pvd === undefined) throw new DiscFormatError('no ISO9660 primary volume descriptor', VD_START);
  return { pvd, pvdOffset, joliet };
}

type Naming = { mode: 'rr'; skip: number } | { mode: 'joliet' } | { mode: 'plain' };

interface Dir {
  lba: number;
  size: number;
  path: string;
  depth: number;
}

interface DirRecord {
  flags: number;
  lba: number;
  dataLength: number;
  earLength: number;
  name: Buffer;
  su: Buffer;
}

/** The record at `pos` of a directory block, or undefined when it is malformed. */
function parseRecord(buf: Buffer, pos: number, end: number): DirRecord | undefined {
  const len = buf[pos]; // undefined past the end: a directory of size 0 (found by the fuzzer)
  if (len === undefined || len < 34 || pos + len > Math.min(end, buf.length)) return undefined;
  const nameLen = buf[pos + 32]!;
  if (33 + nameLen > len) return undefined;
  const suStart = pos + 33 + nameLen + (nameLen % 2 === 0 ? 1 : 0);
  return {
    flags: buf[pos + 25]!,
    lba: buf.readUInt32LE(pos + 2),
    dataLength: buf.readUInt32LE(pos + 10),
    earLength: buf[pos + 1]!,
    name: buf.subarray(pos + 33, pos + 33 + nameLen),
    su: buf.subarray(Math.min(suStart, pos + len), pos + len),
  };
}

function plainIsoName(name: Buffer): string {
  const text = decodeBytes(name).replace(/;\d*$/, '');
  return text.endsWith('.') && !text.slice(0, -1).includes('.') ? text.slice(0, -1) : text;
}

function jolietName(name: Buffer): string {
  let text = '';
  for (let i = 0; i + 1 < name.length; i += 2) text += String.fromCharCode(name.readUInt16BE(i));
  return text.replace(/;\d*$/, '');
}

/** A file spread over records with the multi-extent flag, collected until its last record. */
interface Pending {
  key: string;
  path: string;
  size: number;
  extents: DiscExtent[];
}

/** Walks one ISO9660 directory tree (PVD with Rock Ridge or plain names, or the Joliet SVD). */
class IsoWalk {
  private readonly visited = new Set<number>();
  private readonly queue: Dir[] = [];

  constructor(
    private readonly ctx: ListingContext,
    private readonly blockSize: number,
    private readonly naming: Naming,
  ) {}

  async walk(root: Dir): Promise<void> {
    this.visited.add(root.lba);
    await this.directory(root);
    await this.ctx.drain(this.queue, (dir) => this.directory(dir));
  }

  private async directory(dir: Dir): Promise<void> {
    if (dir.size > MAX_DIRECTORY_BYTES) {
      this.ctx.warn(`${dir.path}/: skipped: directory of ${dir.size} bytes`);
      return;
    }
    const base = dir.lba * this.blockSize;
    const buf = await this.ctx.bytes(base, dir.size, `directory ${dir.path || '/'}`);
    let pending: Pending | undefined;
    for (let pos = 0; pos < buf.length; ) {
      const sectorEnd = Math.min(buf.length, (Math.floor(pos / SECTOR) + 1) * SECTOR);
      const rec = buf[pos] === 0 ? undefined : parseRecord(buf, pos, sectorEnd);
      if (rec === undefined) {
        if (buf[pos] !== 0) this.ctx.warn(`byte ${base + pos}: malformed directory record: rest of the sector skipped`);
        pos = sectorEnd;
        continue;
      }
      this.ctx.countEntry(base + pos);
      pending = await this.record(dir, rec, base + pos, pending);
      pos += buf[pos]!;
    }
    if (pending !== undefined) this.ctx.warn(`${pending.path}: skipped: multi-extent file without its last section`);
  }

  private async record(dir: Dir, rec: DirRecord, where: number, pending: Pending | undefined): Promise<Pending | undefined> {
    if (rec.name.length === 1 && rec.name[0]! <= 1) return pending;
    if (rec.flags & FLAG_ASSOCIATED) return pending;
    const rr = this.naming.mode === 'rr' ? await readRockRidge(this.ctx, rec.su, this.naming.skip, this.blockSize, where) : undefined;
    if (rr?.relocated || rr?.symlink) return pending;
    const name = rr?.name !== undefined ? decodeBytes(rr.name) : this.naming.mode === 'joliet' ? jolietName(rec.name) : plainIsoName(rec.name);
    if (!plainName(name)) {
      this.ctx.warn(`byte ${where}: entry with the unusable name "${name}" skipped`);
      return pending;
    }
    const path = dir.path === '' ? name : `${dir.path}/${name}`;
    if (rr?.childLink !== undefined) await this.childDirectory(dir, path, rr.childLink);
    else if (rec.flags & FLAG_DIR) this.subdirectory(dir, { lba: rec.lba, size: rec.dataLength, path, depth: dir.depth + 1 });
    else return this.fileSection(rec, path, pending);
    return pending;
  }

  private fileSection(rec: DirRecord, path: string, pending: Pending | undefined): Pending | undefined {
    const key = rec.name.toString('latin1');
    if (pending !== undefined && pending.key !== key) {
      this.ctx.warn(`${pending.path}: skipped: multi-extent file without its last section`);
      pending = undefined;
    }
    const file = pending ?? { key, path, size: 0, extents: [] };
    file.extents.push({ offset: (rec.lba + rec.earLength) * this.blockSize, length: rec.dataLength });
    file.size += rec.dataLength;
    if (rec.flags & FLAG_MULTI && file.extents.length < MAX_FILE_EXTENTS) return file;
    this.ctx.addFile(file.path, file.size, file.extents);
    return undefined;
  }

  /** A Rock Ridge CL entry: the relocated directory's size is in its own `.` record. */
  private async childDirectory(parent: Dir, path: string, lba: number): Promise<void> {
    const first = await this.ctx.bytes(lba * this.blockSize, 34, `relocated directory ${path}`);
    this.subdirectory(parent, { lba, size: first.readUInt32LE(10), path, depth: parent.depth + 1 });
  }

  private subdirectory(parent: Dir, child: Dir): void {
    if (child.depth > this.ctx.maxDepth) this.ctx.warn(`${child.path}/: skipped: deeper than ${this.ctx.maxDepth} levels`);
    else if (this.visited.has(child.lba)) this.ctx.warn(`${child.path}/: skipped: directory loop (block ${child.lba} seen before, in ${parent.path || '/'})`);
    else {
      this.visited.add(child.lba);
      this.queue.push(child);
    }
  }
}

function rootOf(vd: Buffer): Dir {
  return { lba: vd.readUInt32LE(156 + 2), size: vd.readUInt32LE(156 + 10), path: '', depth: 0 };
}

/** Lists the files of an ISO9660 volume into `ctx`: Rock Ridge names when present, else Joliet, else plain. */
export async function listIso(ctx: ListingContext, vols: IsoVolumes): Promise<string> {
  const blockSize = vols.pvd.readUInt16LE(128);
  if (blockSize !== 512 && blockSize !== 1024 && blockSize !== 2048) {
    throw new DiscFormatError(`ISO9660 logical block size ${blockSize} (not 512, 1024 or 2048)`, vols.pvdOffset + 128);
  }
  const volumeId = vols.pvd.toString('latin1', 40, 72).trim();
  const root = rootOf(vols.pvd);
  const first = await ctx.bytes(root.lba * blockSize, Math.min(root.size, SECTOR), 'ISO9660 root directory');
  const dot = parseRecord(first, 0, first.length);
  const skip = dot === undefined ? undefined : suspSkip(dot.su);
  if (skip !== undefined) await new IsoWalk(ctx, blockSize, { mode: 'rr', skip }).walk(root);
  else if (vols.joliet !== undefined) await new IsoWalk(ctx, blockSize, { mode: 'joliet' }).walk(rootOf(vols.joliet));
  else await new IsoWalk(ctx, blockSize, { mode: 'plain' }).walk(root);
  return volumeId;
}
