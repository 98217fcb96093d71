/**
 * The upgrade fixture of issue 10: a v1 tree and a v2 tree sharing most "packages" (v2 replaces a few and
 * adds one), the v2 image (xorriso, Rock Ridge + Joliet) published with `jigdo-file make-template`, and a
 * mirror folder holding only the parts v1 lacks. The v1 image is built by each test in the flavour it needs.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LONG_NAME, bytesOf, run, xorrisoImage } from './disc-images.js';
import type { Mirror } from './mirror-server.js';
import type { ImageSession } from '../../src/engine/session.js';

export interface Upgrade {
  v1: string;
  v2: string;
  v2iso: string;
  jigdo: string;
  /** Folder served as `Parts`: only the parts v1 lacks, at their label paths. */
  mirrorDir: string;
  /** Label paths (`pool/...`) of the parts v1 lacks. */
  missing: string[];
  /** Parts of v2 in all. */
  parts: number;
}

const PACKAGES = 24;

/** `pool/main/<letter>/pkg<i>_<version>_amd64.deb`, 3-60 KB each. */
function packageList(version: (i: number) => string): Array<{ rel: string; size: number; seed: string }> {
  return Array.from({ length: PACKAGES }, (_, i) => {
    const v = version(i);
    return { rel: `pool/main/${String.fromCharCode(97 + (i % 5))}/pkg${i}_${v}_amd64.deb`, size: 3000 + ((i * 7919) % 57_000), seed: `pkg${i}-${v}` };
  });
}

async function writeTree(root: string, files: Array<{ rel: string; size: number; seed: string }>): Promise<void> {
  for (const f of files) {
    await mkdir(path.dirname(path.join(root, f.rel)), { recursive: true });
    await writeFile(path.join(root, f.rel), bytesOf(f.seed, f.size));
  }
  await writeFile(path.join(root, 'README.txt'), 'disc notes\n');
}

export async function makeUpgrade(work: string): Promise<Upgrade> {
  const v1 = path.join(work, 'v1');
  const v2 = path.join(work, 'v2');
  const changed = new Set([3, 11, 17]);
  const common = { rel: `pool/contrib/${LONG_NAME}`, size: 20_000, seed: 'long' };
  const v1files = [...packageList(() => '1.0'), common];
  const v2files = [...packageList((i) => (changed.has(i) ? '1.1' : '1.0')), common, { rel: 'pool/main/n/new_1.0_all.deb', size: 9000, seed: 'new' }];
  await writeTree(v1, v1files);
  await writeTree(v2, v2files);
  const v2iso = path.join(work, 'v2.iso');
  await xorrisoImage(v2, v2iso, 'rr');
  await run('jigdo-file', [
    'make-template', '-r', 'quiet', '--force', '--no-cache', `--image=${v2iso}`, `--jigdo=${path.join(work, 'v2.jigdo')}`,
    `--template=${path.join(work, 'v2.template')}`, '--label', `Parts=${v2}`, `${v2}//`,
  ]);
  const v1names = new Set(v1files.map((f) => f.rel));
  const missing = v2files.filter((f) => !v1names.has(f.rel)).map((f) => f.rel);
  const mirrorDir = path.join(work, 'mirror');
  for (const rel of missing) {
    await mkdir(path.dirname(path.join(mirrorDir, rel)), { recursive: true });
    await writeFile(path.join(mirrorDir, rel), await readFile(path.join(v2, rel)));
  }
  // jigdo-file names the v2 tree as a file: server; the tests give the mirror by --mirror Parts=URL instead.
  const jigdoText = (await readFile(path.join(work, 'v2.jigdo'), 'utf8')).replace(/^Parts=file:.*\n/m, '');
  await writeFile(path.join(work, 'v2.jigdo'), jigdoText);
  const parts = jigdoText.split('[Parts]')[1]!.split('\n').filter((l) => /^[A-Za-z0-9_-]{22}=/.test(l)).length;
  return { v1, v2, v2iso, jigdo: path.join(work, 'v2.jigdo'), mirrorDir, missing, parts };
}

/** GET requests per path (no leading slash) the mirror saw since its last reset. */
export function requestsByPath(mirror: Mirror): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of mirror.requests) {
    if (r.method !== 'GET') continue;
    const p = r.path.replace(/^\//, '');
    out.set(p, (out.get(p) ?? 0) + 1);
  }
  return out;
}

/** The mirror was asked for exactly the parts v1 lacks, each once. */
export function assertOnlyMissingFetched(mirror: Mirror, up: Upgrade): void {
  const got = requestsByPath(mirror);
  assert.deepEqual([...got.keys()].sort(), [...up.missing].sort(), 'the mirror is asked for exactly the parts v1 lacks');
  for (const [p, n] of got) assert.equal(n, 1, `${p}: one request`);
}

/** The part of the .jigdo `s` opened for a file of v2 (`rel` below it), and the file's bytes. */
export async function partOf(up: Upgrade, s: ImageSession, rel: string): Promise<{ key: string; data: Buffer }> {
  const data = await readFile(path.join(up.v2, rel));
  const key = [...s.jigdo.parts].find(([, values]) => values.some((v) => v.uri === `Parts:${rel}`))![0];
  return { key, data };
}

/** `length` bytes of part `key`, read through the session's part store. */
export async function readPart(s: ImageSession, key: string, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  await s.parts.readInto(key, 0, length, buf, 0);
  return buf;
}
