#!/usr/bin/env node
// count-read-ops.mjs — how many file operations the image reader sends through libuv's thread pool to read
// a whole image sequentially in FUSE-sized pieces, parts local and known to the hash index (a warm mount).
// Each such operation is a round trip between the main thread and a pool thread; on this project's 2-core
// VMs that costs tens of µs of CPU, so their count per GB is a noise-free measure of the read path's cost
// (timings of the same path move ±40 % from run to run there).
//
// Usage: node scripts/count-read-ops.mjs FIXTURE_DIR [--dist DIR] [--label L] [--cache-dir DIR]
//   FIXTURE_DIR as made by make-fixture.sh (NAME.jigdo, NAME.template, mirror/ and fixture.env);
//   --dist: a built dist/ (tsc output) to measure, default this checkout's; --label: the .jigdo's [Servers]
//   label for mirror/ (default Debian); --cache-dir: its hash index (default a temp dir, removed after).
// Reads the image twice (the first pass hashes the parts and fills the hash index) and counts the second:
// prints one line of JSON with the counts by operation, the total and the total per GB.
import fsp from 'node:fs/promises';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { takeOption } from './cli-args.mjs';

const args = process.argv.slice(2);
const option = (name, dflt) => takeOption(args, name, dflt);
const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(option('--dist', path.join(here, '..', 'dist')));
const label = option('--label', 'Debian');
const ownCache = option('--cache-dir', undefined);
const [fixture] = args;
if (!fixture) {
  process.stderr.write('usage: count-read-ops.mjs FIXTURE_DIR [--dist DIR] [--label L] [--cache-dir DIR]\n');
  process.exit(2);
}
const name = /^NAME=(.*)$/m.exec(readFileSync(path.join(fixture, 'fixture.env'), 'utf8'))?.[1];
if (!name) throw new Error(`${fixture}/fixture.env has no NAME`);

// Count the FileHandle methods the part store reads with (its opens and closes follow from the parts: one each).
const probe = await fsp.open(fileURLToPath(import.meta.url));
const proto = Object.getPrototypeOf(probe);
await probe.close();
const counts = {};
for (const m of ['read', 'stat', 'close']) {
  const original = proto[m];
  proto[m] = function (...a) {
    counts[`FileHandle.${m}`] = (counts[`FileHandle.${m}`] ?? 0) + 1;
    return original.apply(this, a);
  };
}

const { loadJigdo, selectImage, openImage } = await import(pathToFileURL(path.join(dist, 'engine', 'session.js')).href);
const cacheDir = ownCache ?? mkdtempSync(path.join(os.tmpdir(), 'count-read-ops-'));
try {
  const jigdo = await loadJigdo(path.join(fixture, `${name}.jigdo`));
  const s = await openImage(jigdo, selectImage(jigdo), {
    local: [{ label, dir: path.join(fixture, 'mirror') }],
    scan: [],
    cacheDir,
    memory: 128 << 20,
    log: (line) => process.stderr.write(`${line}\n`),
    template: path.join(fixture, `${name}.template`),
  });
  const buf = Buffer.allocUnsafe(128 << 10); // FUSE's request size through fuse-native
  const pass = async () => {
    for (let off = 0; off < s.layout.size; off += buf.length) await s.reader.readTo(off, buf);
  };
  await pass();
  for (const k of Object.keys(counts)) delete counts[k];
  await pass();
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  process.stdout.write(`${JSON.stringify({ dist, counts, total, perGB: Math.round(total / (s.layout.size / 1e9)) })}\n`);
  await s.close();
} finally {
  if (!ownCache) rmSync(cacheDir, { recursive: true, force: true });
}
