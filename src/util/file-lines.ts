import type { FileHandle } from 'node:fs/promises';

/** Bytes read at a time. */
const CHUNK = 1 << 20;

/**
 * The lines of an open file from byte `from` on, each without its '\n' (a last line without one is given too) and with
 * the offset in the file of its first byte, read a chunk at a time: a file far larger than memory (or than V8's longest
 * string) is never held whole. A line longer than `maxLine` bytes is skipped, not gathered, so one without an end in a
 * damaged file cannot fill memory. With `reuse`, the chunks are read into one buffer, so a line is valid only until the
 * next is asked for: reading an index of 150,000 lines (34 MB), the chunks of a buffer each were most of the memory it
 * took.
 */
export async function* fileLinesAt(fh: FileHandle, from: number, maxLine: number, reuse = false): AsyncGenerator<[line: Buffer, at: number]> {
  const one = reuse ? Buffer.allocUnsafe(CHUNK) : undefined;
  let at = from;
  let carry: Buffer[] = []; // the start of a line that began in an earlier chunk
  let carried = 0;
  let carriedAt = 0; // where that line began
  let skipping = false; // within a line longer than maxLine
  for (;;) {
    const chunk = one ?? Buffer.allocUnsafe(CHUNK);
    const { bytesRead } = await fh.read(chunk, 0, CHUNK, at);
    if (bytesRead === 0) break;
    const chunkAt = at;
    at += bytesRead;
    let start = 0;
    for (let nl = chunk.indexOf(0x0a, 0); nl !== -1 && nl < bytesRead; nl = chunk.indexOf(0x0a, start)) {
      if (!skipping && carried + nl - start <= maxLine) {
        yield carried ? [Buffer.concat([...carry, chunk.subarray(start, nl)]), carriedAt] : [chunk.subarray(start, nl), chunkAt + start];
      }
      carry = [];
      carried = 0;
      skipping = false;
      start = nl + 1;
    }
    if (start < bytesRead && !skipping) {
      if (carried === 0) carriedAt = chunkAt + start;
      carried += bytesRead - start;
      if (carried > maxLine) {
        skipping = true;
        carry = [];
        carried = 0;
      } else carry.push(one ? Buffer.from(chunk.subarray(start, bytesRead)) : chunk.subarray(start, bytesRead));
    }
  }
  if (carried && !skipping) yield [Buffer.concat(carry), carriedAt];
}
