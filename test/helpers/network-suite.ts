/**
 * The shared setup of the test/integration/network-*.test.ts files (once network.test.ts): the md5 fixture
 * variant, a work folder, the two config files, HTTP mirrors on 127.0.0.1 closed after the file's tests, and
 * an in-process open of an image wired as the CLI does. A test file calls `setupNetworkSuite()` once at its
 * top level; the `let` exports below are live bindings, set by its `before` hook.
 */
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sourceOptions, type SourceFlags } from '../../src/cli/options.js';
import { loadJigdo, openImage, selectImage, type ImageSession } from '../../src/engine/session.js';
import type { ImageReader } from '../../src/image/reader.js';
import type { Network } from '../../src/network/network.js';
import { buildFixtures, type FixtureSet, type FixtureVariant } from './fixtures.js';
import { startMirror, type Mirror } from './mirror-server.js';

export let fx: FixtureSet;
export let v: FixtureVariant;
export let work: string;
export let image: Buffer;
/** A config file with small ranges, so that the 1.5 MB and 3 MB parts are fetched as parallel ranges. */
export let rangedConfig: string;
export let plainConfig: string;
/** Closed after the file's tests: a test starting a mirror itself pushes it here. */
export const mirrors: Mirror[] = [];

export const P = {
  a: '/parts/pool/a-3k.bin',
  b: '/parts/pool/b-40k.bin',
  c: '/parts/extra/c-200k-copy.bin',
  d: '/parts/pool/d-1500k.bin',
  e: '/parts/pool/e-3m.bin',
  x: '/parts/tiny/exact-1024.bin',
};

export async function mirror(latencyMs = 0, root = fx.tree): Promise<Mirror> {
  const m = await startMirror({ root, latencyMs });
  mirrors.push(m);
  return m;
}

let dirs = 0;
export async function dir(name: string): Promise<string> {
  const d = path.join(work, `${++dirs}-${name}`);
  await mkdir(d, { recursive: true });
  return d;
}

/** Registers the file's `before` (fixtures, work folder, config files) and `after` (mirrors closed, work removed). */
export function setupNetworkSuite(): void {
  before(async () => {
    fx = await buildFixtures();
    v = fx.variants['jf-md5-gzip'];
    image = await readFile(v.image);
    work = await mkdtemp(path.join(tmpdir(), 'jigdofs-net-test-'));
    rangedConfig = path.join(work, 'ranged.ini');
    await writeFile(rangedConfig, '[network]\nrange-size = 256K\nstreams-per-part = 4\n');
    plainConfig = path.join(work, 'plain.ini');
    await writeFile(plainConfig, '; nothing: defaults\n');
  });

  after(async () => {
    await Promise.all(mirrors.map((m) => m.close()));
    await rm(work, { recursive: true, force: true });
  });
}

export interface Opened {
  s: ImageSession;
  net: Network;
  close(): Promise<void>;
}

/** Opens an image in this process with the network wired exactly as the CLI does; `partLog` gets the part store's lines. */
export async function open(jigdoPath: string, cacheDir: string, flags: Partial<SourceFlags> = {}, partLog?: (line: string) => void): Promise<Opened> {
  const opts = sourceOptions({ local: [], scan: [], memory: '64M', quiet: true, cacheDir, config: rangedConfig, timeout: '1', retries: '1', ...flags });
  if (partLog) Object.assign(opts, { log: partLog, logMissing: true }); // the part store's log lines, as a mount logs them
  const jigdo = await loadJigdo(jigdoPath);
  const s = await openImage(jigdo, selectImage(jigdo), opts);
  return {
    s,
    net: opts.network!,
    close: async () => {
      await s.close();
      await opts.network!.close();
    },
  };
}

/** Reads the whole image sequentially, 128 KiB at a time (as FUSE does). */
export async function readAll(reader: ImageReader): Promise<Buffer> {
  const out = Buffer.alloc(reader.size);
  for (let off = 0; off < reader.size; off += 128 << 10) (await reader.read(off, 128 << 10)).copy(out, off);
  return out;
}

export const keyOf = (s: ImageSession, file: string): string => {
  const f = fx.files.find((x) => `/parts/${x.path.replace(/^parts\//, '')}` === file)!;
  const key = Buffer.from(f.md5, 'hex').toString('base64url');
  assert.ok(s.layout.parts.has(key), `${file} is a part of the image`);
  return key;
};
