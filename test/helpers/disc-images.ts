/**
 * Disc images for the disc-filesystem tests, built by the real tools: xorriso (plain ISO9660, Joliet, Rock
 * Ridge, multi-extent), genisoimage -udf (the ISO9660+UDF bridge), mkudffs (udftools: an empty UDF 2.01
 * volume), and the oracle for where each file lies: `xorriso -indev X -find / -exec report_lba`.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { link, mkdir, open, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { DiscExtent, PositionalRead } from '../../src/discfs/index.js';

const execFileP = promisify(execFile);

export async function run(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await execFileP(cmd, args, { maxBuffer: 64 << 20, env: { ...process.env, LANG: 'C', LC_ALL: 'C' } });
  return stdout;
}

/** True when `cmd` can be run (installed). */
export async function hasTool(cmd: string): Promise<boolean> {
  return run('sh', ['-c', `command -v ${cmd}`]).then(
    () => true,
    () => false,
  );
}

/** A positional reader over a file, and its size; close() when done. */
export async function imageReader(file: string): Promise<{ read: PositionalRead; size: number; close: () => Promise<void> }> {
  const fh = await open(file, 'r');
  const size = (await fh.stat()).size;
  const read: PositionalRead = async (offset, length) => {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  };
  return { read, size, close: () => fh.close() };
}

/** The bytes at `extents` of `file`, joined. */
export async function readExtents(file: string, extents: DiscExtent[]): Promise<Buffer> {
  const { read, close } = await imageReader(file);
  try {
    const parts: Buffer[] = [];
    for (const e of extents) parts.push(await read(e.offset, e.length));
    return Buffer.concat(parts);
  } finally {
    await close();
  }
}

export const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Deterministic bytes (a counter run through sha256), so every file differs from every other. */
export function bytesOf(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0, n = 0; i < size; n++) i += createHash('sha256').update(`${seed}/${n}`).digest().copy(out, i);
  return out;
}

/** A name longer than Joliet's 64 characters, with spaces (Rock Ridge keeps it whole). */
export const LONG_NAME = 'a very long file name with spaces, longer than the sixty-four characters of Joliet.deb';

/**
 * A small tree: files in nested folders, a long name, a hard link (same extent, listed once), a symlink
 * (no file), a 1-byte file, an empty file, and a folder 12 levels deep. Returns relative path → content.
 */
export async function makeTree(root: string, seed = 'v1'): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>([
    ['pool/main/a/alpha_1.0_amd64.deb', bytesOf(`${seed}a`, 70_000)],
    ['pool/main/b/beta_2.1_all.deb', bytesOf(`${seed}b`, 5_000)],
    [`pool/contrib/${LONG_NAME}`, bytesOf(`${seed}c`, 12_345)],
    ['tiny.txt', Buffer.from('x')],
    [`${'d/'.repeat(12)}deep.bin`, bytesOf(`${seed}d`, 4096)],
  ]);
  for (const [rel, data] of files) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), data);
  }
  await writeFile(path.join(root, 'empty.txt'), '');
  await link(path.join(root, 'pool/main/b/beta_2.1_all.deb'), path.join(root, 'hardlink.deb'));
  await symlink('pool/main/b/beta_2.1_all.deb', path.join(root, 'symlink.deb'));
  return files;
}

/** Joins adjacent extents, as the reader does. */
export function merged(extents: DiscExtent[]): DiscExtent[] {
  const out: DiscExtent[] = [];
  for (const e of extents) {
    const last = out[out.length - 1];
    if (last !== undefined && last.offset + last.length === e.offset) last.length += e.length;
    else out.push({ ...e });
  }
  return out;
}

/**
 * The oracle: path (relative, as xorriso shows it) → extents of each data file, from
 * `xorriso -indev X -find / -exec report_lba` (one line per section of a multi-extent file).
 */
export async function reportLba(image: string): Promise<Map<string, DiscExtent[]>> {
  const out = await run('xorriso', ['-indev', image, '-find', '/', '-exec', 'report_lba']);
  const files = new Map<string, { size: number; sections: Array<{ lba: number; blocks: number }> }>();
  for (const m of out.matchAll(/^File data lba:\s*\d+\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*'\/(.*)'$/gm)) {
    const f = files.get(m[4]!) ?? { size: Number(m[3]), sections: [] };
    f.sections.push({ lba: Number(m[1]), blocks: Number(m[2]) });
    files.set(m[4]!, f);
  }
  const result = new Map<string, DiscExtent[]>();
  for (const [p, f] of files) {
    let left = f.size;
    const extents = f.sections.map((s) => {
      const length = Math.min(left, s.blocks * 2048);
      left -= length;
      return { offset: s.lba * 2048, length };
    });
    if (f.size > 0) result.set(p, merged(extents));
  }
  return result;
}

export const extentKey = (extents: DiscExtent[]): string => extents.map((e) => `${e.offset}+${e.length}`).join(',');

/** `xorriso` image of `src`: Rock Ridge + Joliet, Joliet only, or plain ISO9660 level 1 names. */
export async function xorrisoImage(src: string, out: string, flavour: 'rr' | 'joliet' | 'plain'): Promise<void> {
  const rr = flavour === 'rr' ? 'on' : 'off';
  const joliet = flavour === 'plain' ? 'off' : 'on';
  await rm(out, { force: true }); // xorriso would append a session to an existing image
  await run('xorriso', ['-outdev', out, '-rockridge', rr, '-joliet', joliet, '-map', src, '/']);
}

/** The ISO9660+UDF bridge of genisoimage. */
export async function udfBridge(src: string, out: string): Promise<void> {
  await rm(out, { force: true });
  await run('genisoimage', ['-quiet', '-udf', '-R', '-J', '-o', out, src]);
}

/** Turns a bridge into a UDF-only image: its ISO9660 volume descriptors (sectors 16..) are zeroed. */
export async function dropIsoDescriptors(image: string): Promise<void> {
  const fh = await open(image, 'r+');
  try {
    for (let s = 16; s < 32; s++) {
      const b = Buffer.alloc(6);
      await fh.read(b, 0, 6, s * 2048);
      if (b.toString('latin1', 1, 6) === 'CD001') await fh.write(Buffer.alloc(2048), 0, 2048, s * 2048);
    }
  } finally {
    await fh.close();
  }
}

/** Copies `data` into `image` at `extents` (in order). */
export async function writeAt(image: string, extents: DiscExtent[], data: Buffer): Promise<void> {
  const fh = await open(image, 'r+');
  try {
    let at = 0;
    for (const e of extents) {
      await fh.write(data, at, e.length, e.offset);
      at += e.length;
    }
  } finally {
    await fh.close();
  }
}


/**
 * An image with a file over 4 GiB (xorriso writes it as a multi-extent file) without writing 4 GiB: xorriso
 * streams the image to a pipe, the first MiB (volume descriptors and directories) is kept, the rest is
 * left sparse (the file is zeros but for `tail`, written into the image where the oracle says it lies).
 */
export async function bigImage(dir: string): Promise<{ image: string; size: number; tail: { at: number; data: Buffer } }> {
  const src = path.join(dir, 'big-src');
  await mkdir(src, { recursive: true });
  const size = 4 * 2 ** 30 + 300_000;
  const tail = { at: 4 * 2 ** 30 - 1000, data: bytesOf('tail', 3000) };
  const fh = await open(path.join(src, 'huge.bin'), 'w');
  await fh.truncate(size);
  await fh.write(tail.data, 0, tail.data.length, tail.at);
  await fh.close();
  await writeFile(path.join(src, 'zzz-after.txt'), 'after the huge file\n');
  const image = path.join(dir, 'big.iso');
  await run('sh', ['-c', `xorriso -file_size_limit off -- -outdev - -map "$0" / 2>/dev/null | head -c 1048576 > "$1"`, src, image]);
  const out = await open(image, 'r+');
  const pvd = Buffer.alloc(2048);
  await out.read(pvd, 0, 2048, 16 * 2048);
  await out.truncate(pvd.readUInt32LE(80) * 2048);
  await out.close();
  const oracle = await reportLba(image);
  let left = tail.at;
  for (const e of oracle.get('huge.bin')!) {
    if (left < e.length) {
      await writeAt(image, [{ offset: e.offset + left, length: tail.data.length }], tail.data);
      break;
    }
    left -= e.length;
  }
  await writeAt(image, oracle.get('zzz-after.txt')!, Buffer.from('after the huge file\n'));
  return { image, size, tail };
}

/**
 * Fragments the UDF file of `size` bytes that starts at image byte `start`: its first two blocks are swapped
 * in the image and its one short allocation descriptor becomes three (block 1, block 0, the rest), so its
 * bytes are right only when read through all three extents in order. Returns those extents.
 */
export async function fragmentUdfFile(image: string, start: number, size: number): Promise<DiscExtent[]> {
  const fh = await open(image, 'r+');
  try {
    const { size: imageSize } = await fh.stat();
    const block = Buffer.alloc(2048);
    for (let at = 0; at < imageSize; at += 2048) {
      await fh.read(block, 0, 2048, at);
      if (block.readUInt16LE(0) !== 261 || block.readUInt32LE(56) !== size || block.readUInt32LE(60) !== 0) continue;
      const adAt = 176 + block.readUInt32LE(168);
      const pos = block.readUInt32LE(adAt + 4);
      const partStart = start / 2048 - pos;
      const ads = Buffer.alloc(24);
      [[2048, pos + 1], [2048, pos], [size - 4096, pos + 2]].forEach(([len, p], i) => {
        ads.writeUInt32LE(len!, i * 8);
        ads.writeUInt32LE(p!, i * 8 + 4);
      });
      ads.copy(block, adAt);
      block.writeUInt32LE(24, 172);
      let sum = 0;
      for (let i = 0; i < 16; i++) if (i !== 4) sum += block[i]!;
      block[4] = sum & 0xff;
      await fh.write(block, 0, 2048, at);
      const [b0, b1] = [Buffer.alloc(2048), Buffer.alloc(2048)];
      await fh.read(b0, 0, 2048, start);
      await fh.read(b1, 0, 2048, start + 2048);
      await fh.write(b1, 0, 2048, start);
      await fh.write(b0, 0, 2048, start + 2048);
      return [
        { offset: (partStart + pos + 1) * 2048, length: 2048 },
        { offset: (partStart + pos) * 2048, length: 2048 },
        { offset: (partStart + pos + 2) * 2048, length: size - 4096 },
      ];
    }
    throw new Error(`no UDF file entry of ${size} bytes in ${image}`);
  } finally {
    await fh.close();
  }
}
