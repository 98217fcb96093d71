import { open, rename, rm } from 'node:fs/promises';
import { checksumKey } from '../format/checksum.js';
import { UnavailableError, errorMessage } from '../format/errors.js';
import type { ImageSession } from '../image/open.js';
import { imageBlocks, ownsMemory } from './stream.js';

export interface MakeImageResult {
  size: number;
  checksum: string;
  missing: string[];
}

/** Finds every part, `limit` at a time; returns the keys of those no source has. */
export async function findMissing(session: ImageSession, limit = 8): Promise<string[]> {
  const keys = [...session.layout.parts.values()].filter((p) => p.length > 0).map((p) => p.key);
  const missing: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const key = keys[next++]!;
      await session.parts.locate(key).catch((err: unknown) => {
        if (!(err instanceof UnavailableError)) throw err;
        missing.push(key);
      });
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return missing;
}

/**
 * Writes the whole image to `output`: first makes sure every part is available (naming the missing
 * ones and writing nothing otherwise), then streams the image in order into `output.tmp-PID`, hashing
 * it on a worker as it goes, and renames it into place only if the image checksum matched.
 */
export async function makeImage(
  session: ImageSession,
  output: string,
  progress?: (done: number, total: number) => void,
): Promise<MakeImageResult> {
  const { layout, reader, pool } = session;
  const missing = await findMissing(session);
  if (missing.length > 0) return { size: layout.size, checksum: '', missing };

  const tmp = `${output}.jigdofs-${process.pid}.tmp`;
  const fh = await open(tmp, 'w');
  const hash = pool.streamHash(layout.checksumKind);
  let ok = false;
  try {
    let pendingHash: Promise<unknown> = Promise.resolve();
    for await (const { offset, data } of imageBlocks(reader)) {
      let done = 0;
      while (done < data.length) done += (await fh.write(data, done, data.length - done, offset + done)).bytesWritten;
      await pendingHash; // at most one block queued on the hasher: memory stays bounded
      pendingHash = hash.update(data, ownsMemory(data));
      progress?.(offset + data.length, layout.size);
    }
    await pendingHash;
    await fh.truncate(layout.size);
    const sum = await hash.digest();
    if (!sum.equals(layout.imageSum)) {
      throw new Error(
        `the rebuilt image's ${layout.checksumKind.toUpperCase()} is ${sum.toString('hex')}, expected ${layout.imageSum.toString('hex')}: not written`,
      );
    }
    await fh.sync();
    ok = true;
    return { size: layout.size, checksum: checksumKey(sum), missing: [] };
  } catch (err) {
    throw err instanceof Error ? err : new Error(errorMessage(err));
  } finally {
    await fh.close();
    if (ok) await rename(tmp, output);
    else await rm(tmp, { force: true });
  }
}
