/**
 * Concurrent readers of mounted images, as a process of their own (the soak test runs its mirrors in its own
 * process: blocking FUSE reads there would take the libuv pool threads the mirrors need to read their files).
 *   UV_THREADPOOL_SIZE=64 node --import tsx test/helpers/soak-reader.ts JSON
 * JSON: { image, seconds, readers: [{ file, random, direct, seed }] }. Each reader reads random ranges (up to
 * 256 KiB) or the image sequentially in 64 KiB reads, pass after pass, optionally with O_DIRECT (every read
 * reaches the daemon, no page cache), and compares every byte with `image`. Prints one JSON tally.
 */
import { closeSync, constants, openSync, read, readFileSync } from 'node:fs';
import { Rng } from '../fuzz/mutate.js';

export interface SoakReaderSpec {
  file: string;
  random: boolean;
  direct: boolean;
  seed: number;
}

export interface SoakTally {
  reads: number;
  bytes: number;
  wrong: string[];
  failed: string[];
}

async function reader(spec: SoakReaderSpec, image: Buffer, until: number, t: SoakTally): Promise<void> {
  const rng = new Rng(spec.seed);
  const buf = Buffer.alloc(256 << 10);
  let pos = 0;
  while (Date.now() < until) {
    const fd = openSync(spec.file, constants.O_RDONLY | (spec.direct ? constants.O_DIRECT : 0));
    try {
      for (let i = 0; i < 64 && Date.now() < until; i++) {
        const start = spec.random ? rng.below(image.length) : pos;
        const len = Math.min(spec.random ? 1 + rng.below(buf.length) : 64 << 10, image.length - start);
        const got = await new Promise<number>((resolve, reject) => read(fd, buf, 0, len, start, (err, n) => (err ? reject(err) : resolve(n)))).catch(
          (err: Error) => {
            t.failed.push(`${spec.file} ${start}+${len}: ${err.message}`);
            return -1;
          },
        );
        if (got < 0) continue;
        t.reads++;
        t.bytes += got;
        if (got !== len || !buf.subarray(0, got).equals(image.subarray(start, start + got))) t.wrong.push(`${spec.file} ${start}+${len}: ${got} bytes, differ`);
        pos = start + len >= image.length ? 0 : start + len;
      }
    } finally {
      closeSync(fd);
    }
  }
}

const { image, seconds, readers } = JSON.parse(process.argv[2]!) as { image: string; seconds: number; readers: SoakReaderSpec[] };
const bytes = readFileSync(image);
const tally: SoakTally = { reads: 0, bytes: 0, wrong: [], failed: [] };
const until = Date.now() + seconds * 1000;
await Promise.all(readers.map((r) => reader(r, bytes, until, tally)));
process.stdout.write(`${JSON.stringify(tally)}\n`);
