import { fsPath, shown } from '../format/byte-string.js';
import { open, rm, unlink, type FileHandle } from 'node:fs/promises';
import { checksumKey } from '../format/checksum.js';
import { JigdoError, UnavailableError, errorMessage } from '../format/errors.js';
import type { ImageSession } from '../engine/session.js';
import type { PartNeed } from '../image/layout.js';
import { DirectOutput } from './direct-output.js';
import { checkOutput, placeOutput } from './output-file.js';
import { DiskWait } from './disk-wait.js';
import { pooledImageBlocks, releasedAfter } from './stream.js';
import { StreamReach } from './stream-reach.js';
import { temporaryPath } from '../util/output-temporary.js';
import { makeListed } from '../util/exit-leftovers.js';
import { eachLimit } from '../util/each-limit.js';
import { holdsSparseFiles } from '../util/file-systems.js';
import { settledWithin } from '../util/settle.js';

/**
 * Blocks in flight at a time, each being written and hashed at once (memory: (depth + IN_FLIGHT + 1) × 4 MiB).
 * With the write awaited before the hash, the stream waited for the disk once per block (a 4 MiB direct write
 * takes milliseconds while the cache's files go to the same disk), and the hashing worker, the critical path,
 * waited with it.
 */
const IN_FLIGHT = 3;
/**
 * Bytes written between two background fdatasyncs: the disk writes the image while we still read and
 * hash, instead of all of it in the final fsync (2 GB fixture: final fsync 1.4 s -> 0.15 s, warm
 * make-image 6.9 s -> 6.2 s). Small, because a write issued while a sync runs waits for it, and a sync's
 * time grows with the bytes it flushes: with 256 MiB, direct writes stalled up to 150-190 ms each time,
 * longer than the IN_FLIGHT blocks cover, and the hashing worker (the critical path) sat idle for ~0.9 s of a
 * local make-image; with 16 MiB the longest write took 24-31 ms and the worker waited only for reads. Local
 * make-image, 2 GB fixture: 4.80-5.07 s -> 3.89-4.08 s with O_DIRECT, 5.69-7.23 s -> 5.23-6.13 s buffered;
 * over HTTP no change (it waits for the fetches). BENCHMARKS.md, "Smaller background syncs of the image".
 */
const WRITEBACK_BYTES = 16 << 20;
/**
 * Largest single write(2) of the image. A 4 MiB block written in one call costs the kernel 3-5× the CPU of the
 * same block in 512 KiB calls (copy_folio_from_iter_atomic; 2.1 GB: 3.5-5.5 s vs 1.1-1.2 s of sys, measured with a
 * throwaway script writing 4 MiB buffers into a fresh file with a datasync every 256 MiB, as writeBlocks then did).
 */
const WRITE_SLICE = 512 << 10;

export interface MakeImageResult {
  size: number;
  checksum: string;
  missing: string[];
  /** Bytes of the image written with O_DIRECT (direct-output.ts), the rest through the page cache; 0 with parts missing (not written). */
  directBytes: number;
}

/** What judges whether the direct writes hold the block loop back (DiskWait; tests force a switch part-way). */
export type DiskWaitPolicy = Pick<DiskWait, 'add' | 'tooSlow'>;

export interface MakeImageOptions {
  /** Replace an existing output file (never a device, a pipe, or an input of the run: see checkOutput). */
  force?: boolean;
  /** Makes the judge of the direct writes, one per image written (default: a DiskWait on this process). */
  diskWait?: () => DiskWaitPolicy;
}

/**
 * Finds every part, `limit` at a time; returns the keys of those no source has. Setting `stop.stopped`
 * ends it early (after the lookups in flight).
 */
export async function findMissing(session: ImageSession, limit = 8, stop = { stopped: false }, reach?: StreamReach): Promise<string[]> {
  const parts = [...session.layout.parts.values()].filter((p) => p.length > 0);
  const first = (p: PartNeed): number => p.offsets.reduce((a, b) => Math.min(a, b), Infinity);
  if (reach) parts.sort((a, b) => first(a) - first(b)); // in the stream's order, which `reach` follows
  const missing: string[] = [];
  const locate = async (p: PartNeed): Promise<unknown> => {
    await reach?.within(first(p));
    if (stop.stopped) return; // (stopping opens the reach: the look-ups it held back are not to start then)
    return session.parts.locate(p.key).catch((err: unknown) => {
      if (!(err instanceof UnavailableError)) throw err;
      missing.push(p.key);
    });
  };
  await eachLimit(parts, limit, locate, () => stop.stopped);
  return missing;
}

/**
 * Every part located alongside a stream of the image, from its first block on (see writeImage): a part no source has
 * then names every missing one, not only the first the stream reached.
 */
export function locatingAlongside(session: ImageSession): {
  start: () => void;
  advance: (position: number) => void;
  missing: () => Promise<string[]>;
  stop: (boundMs?: number) => Promise<void>;
} {
  const stopping = { stopped: false };
  // No further ahead of the stream than the disk cache holds (ImageSession.locateAhead).
  const reach = new StreamReach(session.locateAhead);
  let located: Promise<string[]> | undefined;
  const locate = (): Promise<string[]> => {
    if (!located) {
      located = findMissing(session, 8, stopping, reach);
      located.catch(() => undefined);
    }
    return located;
  };
  return {
    start: () => void locate(),
    /** The stream has written the image up to `position`. */
    advance: (position) => reach.advance(position),
    /** The keys of the parts no source has, once every part is located (the stream is over: no reach is kept). */
    missing: () => {
      reach.open();
      return locate();
    },
    /** Starts no more look-ups, and waits for those under way (at most `boundMs`), so the session is not closed under them. */
    stop: async (boundMs = Infinity) => {
      stopping.stopped = true;
      reach.open();
      const settled = located?.then(() => undefined, () => undefined);
      if (settled) await (boundMs === Infinity ? settled : settledWithin(settled, boundMs));
    },
  };
}

/** The rebuilt image's checksum is not the .jigdo's: some source gave wrong bytes that passed as right. */
class WrongImageError extends JigdoError {}

/** Parts hashed again at a time after a wrong image (the hashing runs on the worker pool). */
const RECHECK_CONCURRENCY = 4;

/**
 * Writes the whole image to `output` (see writeImage). Local copies at the places the .jigdo names, and parts
 * from mirrors that proved right, are used unhashed (ImageSession.deferChecks): each byte is hashed once, in
 * the image. When the image's checksum comes out wrong, such a copy was wrong (a mirror's wrong bytes) or a
 * recorded checksum lied (a local file edited without changing anything the hash index keys on, a damaged
 * cache file): every part used is hashed again, the bad copies are named (and their mirrors blamed), dropped
 * and looked for anew with every check on, and the image is built once more, so that a rerun never fails the
 * same way without saying why.
 */
export async function makeImage(
  session: ImageSession,
  output: string,
  progress?: (done: number, total: number) => void,
  /** Called the moment the verified image has its final name (before the temporary file's handle is closed). */
  onWritten?: () => void,
  opts: MakeImageOptions = {},
): Promise<MakeImageResult> {
  const { jigdo } = session;
  const inputs = [{ what: 'template', path: session.templatePath }, ...(jigdo.location.kind === 'file' ? [{ what: '.jigdo', path: jigdo.location.path }] : [])];
  await checkOutput(output, inputs, opts.force === true);
  // Verify once: copies the .jigdo names (--local) and parts from mirrors that proved right are not hashed
  // before use; the image checksum checks their bytes, and only a wrong image has every part hashed
  // (docs/design.md, "What is verified when").
  session.deferChecks(true);
  let result: MakeImageResult;
  try {
    result = await writeImage(session, output, progress, onWritten, opts);
  } catch (err) {
    if (!(err instanceof WrongImageError)) throw err;
    session.deferChecks(false);
    const bad = await recheckParts(session);
    // No part to blame: the template's own bytes or its image checksum are not this image's, or a source changed while read.
    if (bad === 0) throw new JigdoError(output, `${err.problem}; ${nothingToBlame(session)}`);
    result = await writeImage(session, output, progress, onWritten, opts);
  } finally {
    session.deferChecks(false);
  }
  // Also after a rebuild: the copies hashed again and found right are still unconfirmed (cache names).
  if (result.missing.length === 0) await session.confirmDeferred();
  return result;
}

/** Why an image came out wrong when every part it used hashed right again (make-image, and `-o -`). */
export function nothingToBlame(session: ImageSession): string {
  return `every part was hashed again and is right, so ${session.templatePath} does not describe this image (or a source changed while it was read)`;
}

/**
 * Hashes every part's copy in use again, bypassing the hash index. A copy that does not match is named
 * (LocalSources.recheck logs it), marked stale and dropped from the index; one in the disk cache is
 * removed, since whatever sits under a checksum name there is taken as verified. Returns how many were bad.
 */
export async function recheckParts(session: ImageSession): Promise<number> {
  const keys = [...session.layout.parts.values()].filter((p) => p.length > 0 && session.parts.isLocated(p.key)).map((p) => p.key);
  let bad = 0;
  const recheck = async (key: string): Promise<void> => {
    const { copy, provider } = await session.parts.locate(key);
    const unhashed = copy.deferred === true;
    const verdict = await session.local.recheck(key, copy, session.layout.parts.get(key)!.length);
    if (verdict === 'right') return;
    bad++;
    // Blame only bytes that were taken unhashed and hashed wrong now (a copy gone meanwhile proves nothing).
    if (verdict === 'wrong' && unhashed) session.rejected(key, provider);
    if (!copy.userFile) await rm(copy.path, { force: true }); // a cache file: never a file of the user's (a --local copy, an old disc image)
    // A read goes through the store's re-check, which drops the stale copy and looks for the part
    // again now: the rebuild then sees it as found elsewhere or missing, like any other part.
    await session.parts.readInto(key, 0, 1, Buffer.alloc(1), 0).catch(() => undefined);
  };
  await eachLimit(keys, RECHECK_CONCURRENCY, recheck);
  return bad;
}

/**
 * Streams the image in order into `output.jigdofs-HOSTTAG-PID.tmp` (util/output-temporary.ts), hashing it on a worker as it goes, and
 * renames it into place only if the image checksum matched. Meanwhile every part is located (with cold
 * caches: hashed) ahead of the stream, so that a missing part names them all: the temporary file is then
 * removed and nothing is written under `output`. Memory is fixed: 8 blocks of 4 MiB (4 read ahead, IN_FLIGHT
 * being written and hashed, 1 being handed over), reused (see pooledImageBlocks).
 */
async function writeImage(
  session: ImageSession,
  output: string,
  progress: ((done: number, total: number) => void) | undefined,
  onWritten: (() => void) | undefined,
  opts: MakeImageOptions,
): Promise<MakeImageResult> {
  const { layout, reader, pool } = session;
  // Locating runs alongside the stream rather than before it: with cold caches both are CPU-bound
  // (hashing every part, hashing the image) and so use both cores (2 GB fixture, empty cache dir:
  // 9.3 s -> 8.4 s). It is over before makeImage returns or throws.
  // It starts once the stream has its first block on the hashing worker (warmed by the command): its lookups
  // (a stat and an index check per part, 1,550 of them here) had the main thread busy for the first ~0.35 s
  // while the worker waited for data.
  const locating = locatingAlongside(session);
  const missingResult = async (): Promise<MakeImageResult | undefined> => {
    const missing = await locating.missing();
    return missing.length > 0 ? { size: layout.size, checksum: '', missing, directBytes: 0 } : undefined;
  };
  /** Any other failure: stop locating, wait for the lookups in flight, then report the failure. */
  const fail = async (err: unknown): Promise<never> => {
    await locating.stop();
    throw err instanceof Error ? err : new Error(errorMessage(err));
  };

  const tmp = temporaryPath(output);
  let fh: FileHandle;
  let unlist: () => void; // (a signal or a fatal error ends the process: the file goes)
  try {
    [fh, unlist] = await makeListed(fsPath(tmp), () => open(fsPath(tmp), 'w')); // the image's name may hold non-UTF-8 bytes (byte-string.ts)
  } catch (err) {
    const missing = await missingResult(); // missing parts are the first thing to report
    if (missing) return missing;
    throw new JigdoError(output, `cannot write: ${errorMessage(err)}`);
  }
  /** A write error of the image (a full disk...), named after the file the user asked for. */
  const cannotWrite = (err: unknown): never => {
    throw new JigdoError(output, `cannot write: ${errorMessage(err)}`);
  };
  const hash = pool.streamHash(layout.checksumKind);
  const direct = DirectOutput.open(tmp, layout.size, process.env.JIGDOFS_DIRECT_IO !== '0');
  let ok = false;
  try {
    // Sized before the first write, so no write extends the file: ext4 journals more for a direct write past the
    // end (the inode on the orphan list before it, the new size after it), and such writes waited longer behind the
    // background syncs. 2 GB fixture, alternated: make-image 0.05-0.87 s quicker locally in every pair where the
    // host's disk did not stall, 0.35-0.8 s over HTTP at 0 ms (BENCHMARKS.md, "Smaller background syncs of the
    // image"). The file stays sparse until written; the final truncate cuts the direct-write probe off. Only where
    // growing a file writes nothing (util/file-systems.ts): on FAT it would write the whole image twice.
    if (await holdsSparseFiles(fsPath(tmp))) await fh.truncate(layout.size).catch(cannotWrite);
    let directBytes: number;
    try {
      const advanced = (done: number, total: number): void => {
        locating.advance(done);
        progress?.(done, total);
      };
      directBytes = await writeBlocks(reader, { fh, direct, diskWait: opts.diskWait?.() ?? new DiskWait() }, hash, cannotWrite, advanced, locating.start);
    } catch (err) {
      // The stream reached a part no source has: name every missing part (the temporary file goes).
      if (err instanceof UnavailableError) {
        const missing = await missingResult();
        if (missing) return missing;
      }
      throw err;
    }
    const missing = await missingResult();
    if (missing) return missing;
    await fh.truncate(layout.size).catch(cannotWrite);
    const sum = await hash.digest();
    if (!sum.equals(layout.imageSum)) {
      throw new WrongImageError(
        output,
        `the rebuilt image's ${layout.checksumKind.toUpperCase()} is ${sum.toString('hex')}, expected ${layout.imageSum.toString('hex')}: not written`,
      );
    }
    await fh.sync().catch(cannotWrite);
    await placeOutput(tmp, output, opts.force === true);
    ok = true;
    onWritten?.();
    return { size: layout.size, checksum: checksumKey(sum), missing: [], directBytes };
  } catch (err) {
    return await fail(await withoutTemporary(err, tmp, output));
  } finally {
    direct.close();
    await fh.close().catch(() => undefined);
    if (!ok) await unlink(fsPath(tmp)).catch(() => undefined); // (removed already, or said so, on a failure)
    unlist(); // (renamed, or removed: a later removal of the name at exit would find nothing either way)
  }
}

/**
 * Removes the temporary image after `err` (also when the rename failed: never leave it), and returns `err`; when it
 * cannot be removed (a folder turned read-only), `err` with that said. Before, the removal's own error replaced
 * `err` (an EPERM unlink retried by rm as a folder: "ENOTDIR ... scandir"), and the 2 GB file stayed unnamed.
 */
export async function withoutTemporary(err: unknown, tmp: string, output: string): Promise<unknown> {
  const left = await unlink(fsPath(tmp)).then(
    () => undefined,
    (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : e),
  );
  if (!left) return err;
  const note = `; its temporary file ${shown(tmp)} is left (${left.code ?? errorMessage(left)}): remove it by hand`;
  // The same error, said further (its class decides what follows: a wrong image has its parts hashed again).
  if (err instanceof Error) return Object.assign(err, { message: `${err.message}${note}` });
  return new JigdoError(output, `${errorMessage(err)}${note}`);
}

/**
 * Writes the image's blocks into `fh` and hashes them, returning (how many bytes went direct) once all are written and
 * hashed and no background sync runs. Blocks come from a small pool of shared buffers: each is written and hashed on the
 * worker (without a copy) at once, and reused once both are done. With IN_FLIGHT blocks under way the worker
 * always has the next block queued (the whole-image hash is the critical path of make-image).
 */
async function writeBlocks(
  reader: ImageSession['reader'],
  { fh, direct, diskWait }: { fh: FileHandle; direct: DirectOutput; diskWait: DiskWaitPolicy },
  hash: ReturnType<ImageSession['pool']['streamHash']>,
  cannotWrite: (err: unknown) => never,
  progress: ((done: number, total: number) => void) | undefined,
  onFirstBlock: () => void,
): Promise<number> {
  /** Each block under way, done once written and hashed: how much later than its hash its direct write ended, if direct. */
  const inFlight: Array<Promise<number | undefined>> = [];
  let directBytes = 0;
  let syncing: Promise<void> | undefined;
  let syncError: unknown;
  let unsynced = 0;
  /** Direct when the file system takes it (direct-output.ts), else (or for a short last block) buffered; true if direct. */
  const write = async (data: Buffer, offset: number): Promise<boolean> => {
    if (await direct.write(data, offset).catch(cannotWrite)) {
      directBytes += data.length;
      return true;
    }
    for (let done = 0; done < data.length; ) {
      const n = Math.min(WRITE_SLICE, data.length - done);
      done += (await fh.write(data, done, n, offset + done).catch(cannotWrite)).bytesWritten;
    }
    return false;
  };
  /** Waits for the oldest block; the direct writes give way to buffered ones once they hold the loop back (DiskWait). */
  const oldest = async (): Promise<void> => {
    const t0 = performance.now();
    const lag = await inFlight.shift()!;
    if (lag === undefined) return;
    diskWait.add(performance.now() - t0, lag);
    if (direct.active && diskWait.tooSlow) direct.stop();
  };
  try {
    for await (const block of pooledImageBlocks(reader, { held: IN_FLIGHT + 1, allocate: (n) => direct.allocate(n) })) {
      const { offset, data } = block;
      while (inFlight.length >= IN_FLIGHT) await oldest();
      // Hashes are queued in order (the worker's stream hash); writes may end in any order (each at its offset).
      const written = write(data, offset).then((isDirect) => ({ isDirect, at: performance.now() }));
      const hashed = hash.update(data).then(() => performance.now());
      const done = releasedAfter(block, written, hashed).then(([w, hashedAt]) => (w.isDirect ? w.at - hashedAt : undefined));
      done.catch(() => undefined); // awaited in turn; no unhandled rejection if the stream stops first
      if (offset === 0) onFirstBlock();
      inFlight.push(done);
      unsynced += data.length;
      if (unsynced >= WRITEBACK_BYTES && !syncing) {
        unsynced = 0;
        syncing = fh
          .datasync()
          .catch((err: unknown) => void (syncError ??= err))
          .finally(() => (syncing = undefined));
      }
      progress?.(offset + data.length, reader.size);
    }
    await Promise.all(inFlight);
  } finally {
    // Nothing may still write into `fh` once this returns or throws: the caller closes it.
    await Promise.allSettled(inFlight);
    await syncing;
  }
  if (syncError) cannotWrite(syncError);
  return directBytes;
}
