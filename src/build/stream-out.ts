import type { ImageSession } from '../engine/session.js';
import { checksumKey } from '../format/checksum.js';
import { JigdoError, UnavailableError, errorMessage } from '../format/errors.js';
import { locatingAlongside, nothingToBlame, recheckParts } from './make-image.js';
import { pooledImageBlocks, releasedAfter } from './stream.js';

/** Shown for `-o -` in every line about the output. */
export const STANDARD_OUTPUT = 'standard output';

/** Blocks handed to the output (and the hashing worker) that are not written yet: 4 MiB each. */
const IN_FLIGHT = 3;

export interface StreamResult {
  size: number;
  checksum: string;
  /** Parts no source has (the stream stopped at the first): nothing after it was written. */
  missing: string[];
  /**
   * Bytes written before the stream stopped for a missing part (all of them when none is missing). Counted by whole
   * blocks: one the reader took part of before it went away is not, hence "at least" in that error.
   */
  written: number;
}

/** The stream's end: its error once it failed (EPIPE when the reader went away), its buffered bytes flushed. */
function writeTo(out: NodeJS.WritableStream, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * `make-image -o -`, as jigdo-file's `--image=-`: the image in order on `out` (a pipe into dd, ssh, a hash), in one
 * pass and without a temporary file. Bytes written cannot be taken back, so nothing is trusted here: every part is
 * verified before its bytes go out (the checks make-image defers to the image checksum stay on; design.md, "What is
 * verified when"), and the whole image's checksum is compared at the end as well. Parts are located alongside the
 * stream, so a missing part names every missing one. Memory is fixed: the reader's pooled blocks.
 */
export async function streamImage(session: ImageSession, out: NodeJS.WritableStream, progress?: (done: number, total: number) => void): Promise<StreamResult> {
  const { layout, reader, pool } = session;
  const locating = locatingAlongside(session);
  const hash = pool.streamHash(layout.checksumKind);
  const inFlight: Array<Promise<void>> = [];
  let written = 0;
  const cannotWrite = (err: unknown): never => {
    throw new JigdoError(STANDARD_OUTPUT, (err as NodeJS.ErrnoException).code === 'EPIPE' ? `closed by its reader after at least ${written} bytes: the image was not written whole` : `cannot write: ${errorMessage(err)}`);
  };
  try {
    for await (const block of pooledImageBlocks(reader, { held: IN_FLIGHT + 1 })) {
      if (block.offset === 0) locating.start();
      while (inFlight.length >= IN_FLIGHT) await inFlight.shift();
      const sent = writeTo(out, block.data).then(() => locating.advance((written += block.data.length)), cannotWrite);
      const done = releasedAfter(block, sent, hash.update(block.data)).then(() => undefined);
      done.catch(() => undefined); // awaited in turn
      inFlight.push(done);
      progress?.(block.offset + block.data.length, reader.size);
    }
    await Promise.all(inFlight);
  } catch (err) {
    await Promise.allSettled(inFlight);
    const missing = err instanceof UnavailableError ? await locating.missing() : [];
    if (missing.length > 0) return { size: layout.size, checksum: '', missing, written };
    // (A reader gone, a full disk: not worth waiting for look-ups that may be downloads, beyond a moment.)
    await locating.stop(LOOKUPS_WAIT_MS);
    throw err;
  }
  await locating.stop(); // over already: every part was read
  const sum = await hash.digest();
  if (!sum.equals(layout.imageSum)) throw await wrongImage(session, sum);
  // As make-image once its file is whole: the parts downloaded leave the cache unless --keep-parts (README).
  await session.confirmDeferred();
  return { size: layout.size, checksum: checksumKey(sum), missing: [], written };
}

/** After a failure, how long the look-ups under way may still take before the session closes under them. */
const LOOKUPS_WAIT_MS = 2000;

/**
 * The image's checksum came out wrong, though every part was checked before use: a copy whose recorded checksum lied
 * (a file edited without changing what the hash index keys on, a damaged cache file). Its bytes are gone down the pipe,
 * but the next run must not send them again: every part used is hashed again, the bad copies named (in the log) and
 * dropped, as make-image does before it writes the image once more.
 */
async function wrongImage(session: ImageSession, sum: Buffer): Promise<JigdoError> {
  const { layout } = session;
  const bad = await recheckParts(session).catch((err: unknown) => errorMessage(err)); // (a cache file that cannot be removed...)
  const why =
    typeof bad === 'string'
      ? `hashing the parts again failed: ${bad}`
      : bad > 0
        ? `${bad} part cop${bad === 1 ? 'y was' : 'ies were'} wrong and ${bad === 1 ? 'is' : 'are'} no longer used: run it again`
        : nothingToBlame(session);
  return new JigdoError(STANDARD_OUTPUT, `the image's ${layout.checksumKind.toUpperCase()} is ${sum.toString('hex')}, expected ${layout.imageSum.toString('hex')}: the bytes written are not this image; ${why}`);
}
