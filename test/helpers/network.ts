/**
 * Helpers for the network tests: .jigdo copies whose [Servers] point at test mirrors, a check that every
 * file under a checksum name in a cache directory really has that checksum, and request-log queries.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { copyFile, mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { prng } from './cli.js';
import { fileMd5 } from './hash.js';
import type { FixtureVariant } from './fixtures.js';
import { startMirror, type Mirror, type RequestRecord } from './mirror-server.js';
import { TRUST_AFTER_PARTS } from '../../src/network/mirror-board.js';

/**
 * Copies a variant's .jigdo into `outDir` with its `Parts=` line replaced by one line per URI (tried in
 * that order), and its template beside it. Returns the new .jigdo's path.
 */
export async function jigdoWithServers(variant: FixtureVariant, uris: string[], outDir: string, name?: string): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const text = await readFile(variant.jigdo, 'utf8');
  const lines = uris.map((u) => `Parts=${u}`);
  const replaced = text.replace(/^Parts=.*$/m, lines.join('\n'));
  if (replaced === text && uris.length > 0) throw new Error(`${variant.jigdo}: no Parts= line to replace`);
  const out = path.join(outDir, name ?? path.basename(variant.jigdo));
  await writeFile(out, replaced);
  await copyFile(variant.template, path.join(outDir, path.basename(variant.template)));
  return out;
}

/** `http://127.0.0.1:PORT/parts/` of a mirror rooted at the fixture tree. */
export const partsUri = (m: Mirror): string => `${m.url}parts/`;

/** Every verified file of a cache (parts and templates) with what its name says it is. */
export async function cacheFiles(cacheDir: string): Promise<Array<{ file: string; kind: 'md5' | 'sha256'; hex: string; size: number }>> {
  const out: Array<{ file: string; kind: 'md5' | 'sha256'; hex: string; size: number }> = [];
  for (const kind of ['md5', 'sha256'] as const) {
    const partsDir = path.join(cacheDir, 'parts', kind);
    for (const shard of await readdir(partsDir).catch(() => [] as string[])) {
      for (const name of await readdir(path.join(partsDir, shard)).catch(() => [] as string[])) {
        const file = path.join(partsDir, shard, name);
        out.push({ file, kind, hex: name, size: (await stat(file)).size });
      }
    }
    const tdir = path.join(cacheDir, 'templates', kind);
    for (const name of await readdir(tdir).catch(() => [] as string[])) {
      const file = path.join(tdir, name);
      out.push({ file, kind, hex: name.replace(/\.template$/, ''), size: (await stat(file)).size });
    }
  }
  return out;
}

/** Throws unless every file under a checksum name in the cache hashes to that name. Returns the files. */
export async function assertCacheVerified(cacheDir: string): ReturnType<typeof cacheFiles> {
  const files = await cacheFiles(cacheDir);
  for (const f of files) {
    const sum = createHash(f.kind).update(await readFile(f.file)).digest('hex');
    if (sum !== f.hex) throw new Error(`cache holds a bad file: ${f.file} hashes to ${sum}`);
  }
  return files;
}

/** Files left in the cache's temporary and lock folders. */
export async function cacheLeftovers(cacheDir: string): Promise<{ tmp: string[]; locks: string[] }> {
  const list = (d: string) => readdir(path.join(cacheDir, 'parts', d)).catch(() => [] as string[]);
  return { tmp: await list('tmp'), locks: await list('locks') };
}

/** GET requests of a mirror for one path. */
export const gets = (m: Mirror, p: string): RequestRecord[] => m.requests.filter((r) => r.method === 'GET' && r.path === p);

/** Body bytes a mirror sent per path (GETs only). */
export function bytesByPath(m: Mirror): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of m.requests) if (r.method === 'GET') out.set(r.path, (out.get(r.path) ?? 0) + r.bytes);
  return out;
}


export { fileMd5, md5hex } from './hash.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond` holds (polling), or throws after `ms`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The lines of `make-image`'s stderr that list a missing part: `  KEY (N bytes) URI: why`. */
export const missingPartLines = (stderr: string): string[] => stderr.split('\n').filter((l) => /^ {2}\S+ \(\d+ bytes\)/.test(l));

/** A throwaway self-signed certificate (EC P-256) for `subject`, valid two days: its key and certificate files in `dir`. */
export async function selfSignedCertificate(dir: string, name: string, subject = '127.0.0.1'): Promise<{ key: string; cert: string }> {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  const san = /^[\d.]+$/.test(subject) ? `IP:${subject}` : `DNS:${subject}`;
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', `/CN=${subject}`, '-addext', `subjectAltName=${san}`]);
  return { key, cert };
}

/**
 * A mirror of `root` whose answers after its first TRUST_AFTER_PARTS GETs each wait `waitMs`, for a test that wants
 * later parts cached unhashed (MirrorBoard.trusted): the requests after those parts then start once they are committed
 * (hashed right, each commit a sync). Answering at once, on a loaded machine every request had started before the
 * commits made the mirror trusted, and no part went unhashed (a CI run failed so).
 */
export async function trustedLaterMirror(root: string, waitMs = 250): Promise<Mirror> {
  let gets = 0;
  const mirror: Mirror = await startMirror({
    root,
    onResponse: (r) => {
      if (r.method === 'GET' && ++gets === TRUST_AFTER_PARTS) mirror.latencyMs = waitMs;
    },
  });
  return mirror;
}

/**
 * An image of `count` distinct 4 KiB parts between runs of zeros, made with jigdo-file, whose [Servers]
 * send `Parts:` to `uri`. The parts are not served by anyone: only the mirror's behaviour matters here.
 * `gap` zero bytes (template data) lie between two parts.
 */
export async function manyParts(d: string, count: number, uri: string, gap = 0): Promise<{ jigdo: string; image: string; partOffsets: number[] }> {
  const parts = path.join(d, 'tree', 'parts');
  await mkdir(parts, { recursive: true });
  const rand = prng(count);
  const pieces: Buffer[] = [Buffer.alloc(3000)];
  const partOffsets: number[] = [];
  let at = 3000;
  for (let i = 0; i < count; i++) {
    const data = Buffer.alloc(4096);
    for (let j = 0; j < data.length; j++) data[j] = Math.floor(rand() * 256);
    await writeFile(path.join(parts, `p-${String(i).padStart(4, '0')}.bin`), data);
    pieces.push(data);
    partOffsets.push(at);
    at += data.length;
    if (gap > 0 && i < count - 1) {
      pieces.push(Buffer.alloc(gap));
      at += gap;
    }
  }
  pieces.push(Buffer.alloc(5000));
  const image = path.join(d, 'many.img');
  await writeFile(image, Buffer.concat(pieces));
  await promisify(execFile)('jigdo-file', ['make-template', '-r', 'quiet', '--force', '--no-cache', `--image=${image}`, '--jigdo=many.jigdo',
    '--template=many.template', '--label', 'Parts=tree/parts', '--uri', `Parts=${uri}`, 'tree/parts//'], { cwd: d });
  const jigdo = path.join(d, 'many.jigdo');
  assert.equal((await readFile(jigdo, 'utf8')).match(/=Parts:p-/g)?.length, count, 'every file is a part');
  return { jigdo, image, partOffsets };
}

/** `n` pseudo-random bytes from `seed` (AES-CTR: fast for megabytes). */
export const randomBytesOf = (n: number, seed: number): Buffer => createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16)).update(Buffer.alloc(n));

/**
 * `work`/big.iso: `parts` random parts of `partBytes` (files `work`/tree/parts/pNN.bin), each after 2,048 random raw
 * bytes, then `zeros` bytes of zeros (a sparse run) and 4 KiB of random bytes when `zeros` is given; its .jigdo and
 * template by jigdo-file (`Parts=tree/parts`). The variant's fields the network tests use: jigdo, template, imageMd5.
 */
export async function randomPartsImage(work: string, parts: number, partBytes: number, zeros = 0): Promise<FixtureVariant> {
  const partsDir = path.join(work, 'tree', 'parts');
  await mkdir(partsDir, { recursive: true });
  const image = path.join(work, 'big.iso');
  const fh = await open(image, 'w');
  let at = 0;
  for (let i = 0; i < parts; i++) {
    const part = randomBytesOf(partBytes, i + 1);
    await writeFile(path.join(partsDir, `p${String(i).padStart(2, '0')}.bin`), part);
    await fh.write(randomBytesOf(2048, 100 + i), 0, 2048, at); // raw bytes between the parts
    await fh.write(part, 0, partBytes, at + 2048);
    at += 2048 + partBytes;
  }
  if (zeros > 0) {
    await fh.truncate(at + zeros);
    await fh.write(randomBytesOf(4096, 99), 0, 4096, at + zeros);
  }
  await fh.close();
  await promisify(execFile)('jigdo-file', [
    'make-template', '-r', 'quiet', '--force', '--no-cache', `--image=${image}`, '--jigdo=big.jigdo', '--template=big.template',
    '--label', 'Parts=tree/parts', '--uri', 'Parts=http://127.0.0.1:8765/parts/', 'tree/parts//',
  ], { cwd: work });
  return { jigdo: path.join(work, 'big.jigdo'), template: path.join(work, 'big.template'), imageMd5: await fileMd5(image) } as FixtureVariant;
}
