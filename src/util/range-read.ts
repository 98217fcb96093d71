import { readSync } from 'node:fs';

/**
 * Reads `ranges` of the open file `fd` in order through `buf`, handing each chunk to `take` (synchronous: for
 * worker threads, which do nothing else meanwhile). A range of length Infinity runs to the end of the file; a
 * finite one that the file ends inside of throws `short()`. The one loop both worker kinds hash files with
 * (util/worker-main.ts, publish/scan-worker.ts).
 */
export function readRangesSync(fd: number, ranges: Iterable<{ offset: number; length: number }>, buf: Buffer, take: (chunk: Buffer) => void, short: () => Error): void {
  for (const r of ranges) {
    for (let pos = r.offset, left = r.length; left > 0; ) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, left), pos);
      if (n === 0) {
        if (left !== Number.POSITIVE_INFINITY) throw short();
        break;
      }
      take(buf.subarray(0, n));
      pos += n;
      left -= n;
    }
  }
}
