#!/usr/bin/env node
// rand-read.mjs — latency of random reads: COUNT preads of BLOCK bytes at random BLOCK-aligned offsets
// of FILE (seeded, so two files of the same size get the very same offsets), one at a time.
//
// Usage: node scripts/rand-read.mjs FILE [--count 2000] [--block 4096] [--seed 1] [--json]
// Prints: count, p50/p90/p99/max and mean latency in µs (and the bytes checked to be non-short).
import { openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { takeFlag, takeOption } from './cli-args.mjs';

const args = process.argv.slice(2);
const option = (name, dflt) => takeOption(args, name, dflt);
const json = takeFlag(args, '--json');
const count = Number(option('--count', '2000'));
const block = Number(option('--block', '4096'));
let seed = Number(option('--seed', '1')) >>> 0;
const file = args[0];
if (!file) {
  process.stderr.write('usage: rand-read.mjs FILE [--count N] [--block BYTES] [--seed N] [--json]\n');
  process.exit(2);
}

// mulberry32: small, deterministic, good enough to spread offsets.
const rand = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const fd = openSync(file, 'r');
const size = fstatSync(fd).size;
const blocks = Math.floor(size / block);
if (blocks < 1) throw new Error(`${file} is smaller than one block`);
const buf = Buffer.alloc(block);
const lat = new Float64Array(count);
for (let i = 0; i < count; i++) {
  // rand() has 2^32 steps: every block of an image up to 16 TiB (4 KiB blocks) can be drawn
  const pos = Math.floor(rand() * blocks) * block;
  const t0 = process.hrtime.bigint();
  const n = readSync(fd, buf, 0, block, pos);
  const t1 = process.hrtime.bigint();
  if (n !== block) throw new Error(`short read at ${pos}: ${n} bytes`);
  lat[i] = Number(t1 - t0) / 1000;
}
closeSync(fd);
const sorted = Float64Array.from(lat).sort();
const q = (p) => sorted[Math.min(count - 1, Math.ceil((p / 100) * count) - 1)];
const mean = lat.reduce((a, b) => a + b, 0) / count;
const r = { count, block, p50: q(50), p90: q(90), p99: q(99), max: sorted[count - 1], mean };
if (json) process.stdout.write(JSON.stringify(r) + '\n');
else process.stdout.write(`count ${count} block ${block} p50 ${r.p50.toFixed(0)} p90 ${r.p90.toFixed(0)} p99 ${r.p99.toFixed(0)} max ${r.max.toFixed(0)} mean ${r.mean.toFixed(0)} (us)\n`);
