#!/usr/bin/env node
// bench-direct-write.mjs — how fast make-image's output can be written with O_DIRECT from buffers at different
// places in memory, against buffered writes: what decided that make-image's blocks are page-aligned shared
// WebAssembly memory (src/build/direct-output.ts). The kernel takes a direct write from any buffer aligned to the
// disk's logical block size (512 bytes here), but a buffer 512 bytes past a page start may be far slower.
//
// Usage: node scripts/bench-direct-write.mjs [DIR] [--mib N] [--runs N]      (after npm run build)
//   DIR: where the test file is written (default: the system's temp dir; it must take O_DIRECT); --mib: size
//   written per run (default 1024); --runs: rounds, the four ways alternated in each (default 3).
// Each way writes random bytes in 4 MiB blocks at increasing offsets, one write in flight (as writeBlocks), then
// fdatasync; prints every run and the medians. Nothing is written into the repository; the file is removed.
//   page        the first byte of a shared WebAssembly.Memory (what make-image uses)
//   page+512    a SharedArrayBuffer view 512 bytes past a page start (what a probe for 512-byte alignment finds
//               inside a malloc'd SharedArrayBuffer, whose memory starts 16 bytes past a page)
//   page+4096   the same SharedArrayBuffer view moved to the next page start
//   buffered    plain writes through the page cache
import { closeSync, constants, fdatasyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { pageAlignedShared } from '../dist/build/direct-output.js';
import { takeOption } from './cli-args.mjs';

const args = process.argv.slice(2);
const mib = Number(takeOption(args, '--mib', 1024));
const runs = Number(takeOption(args, '--runs', 3));
const dir = args[0] ?? os.tmpdir();
const BLOCK = 4 << 20;
const blocks = Math.max(1, Math.floor((mib << 20) / BLOCK));
const file = path.join(dir, `bench-direct-write-${process.pid}.tmp`);

/** Three 4 MiB buffers (written in turn, as make-image's pool), `skew` bytes past a page start of malloc'd memory. */
function mallocViews(skew) {
  // A SharedArrayBuffer of this size is mmap'd by malloc: its memory starts 16 bytes past a page.
  return [0, 1, 2].map(() => Buffer.from(new SharedArrayBuffer(BLOCK + 8192)).subarray(skew - 16, skew - 16 + BLOCK));
}

const ways = {
  page: () => [0, 1, 2].map(() => pageAlignedShared(BLOCK)),
  'page+512': () => mallocViews(512),
  'page+4096': () => mallocViews(4096),
  buffered: () => [0, 1, 2].map(() => Buffer.alloc(BLOCK)),
};

function once(way) {
  const bufs = ways[way]();
  for (const b of bufs) randomFillSync(b);
  const fd = openSync(file, 'w');
  const out = way === 'buffered' ? fd : openSync(file, constants.O_WRONLY | constants.O_DIRECT);
  const t0 = performance.now();
  for (let i = 0; i < blocks; i++) writeSync(out, bufs[i % 3], 0, BLOCK, i * BLOCK);
  fdatasyncSync(fd);
  const s = (performance.now() - t0) / 1000;
  if (out !== fd) closeSync(out);
  closeSync(fd);
  rmSync(file, { force: true });
  return s;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const times = Object.fromEntries(Object.keys(ways).map((w) => [w, []]));
console.log(`${blocks} writes of 4 MiB (${((blocks * BLOCK) / 2 ** 30).toFixed(2)} GiB) into ${dir}, ${runs} rounds; load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
try {
  for (let r = 1; r <= runs; r++) {
    for (const way of Object.keys(ways)) {
      const s = once(way);
      times[way].push(s);
      console.log(`round ${r}  ${way.padEnd(9)}  ${s.toFixed(2)} s  ${((blocks * BLOCK) / 1e6 / s).toFixed(0)} MB/s`);
    }
  }
} catch (err) {
  rmSync(file, { force: true });
  console.error(`bench-direct-write: ${err.message} (does ${dir} take O_DIRECT?)`);
  process.exit(1);
}
console.log('\n| way | median s | MB/s | runs |\n|---|---|---|---|');
for (const [way, xs] of Object.entries(times)) {
  const m = median(xs);
  console.log(`| ${way} | ${m.toFixed(2)} | ${((blocks * BLOCK) / 1e6 / m).toFixed(0)} | ${xs.map((x) => x.toFixed(2)).join(' ')} |`);
}
