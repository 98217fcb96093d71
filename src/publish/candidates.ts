import { open, readFile, stat } from 'node:fs/promises';
import type { Worker } from 'node:worker_threads';
import { decodeBytes, fsPath, shown } from '../format/byte-string.js';
import { JigdoError, errorMessage } from '../format/errors.js';
import { DiscFormatError, detectDisc, fileReader, listDisc } from '../discfs/index.js';
import { identityOf, type FileIdentity } from '../sources/file-identity.js';
import type { FileRange } from '../util/worker-protocol.js';
import { startWorker } from '../util/start-worker.js';
import type { WalkArg, WalkBatch, WalkReply } from './walk-protocol.js';

/**
 * The candidate files of make-template, found as jigdo-file finds them: arguments in order, folders walked
 * depth first in readdir order (symbolic links last), `DIR//sub/path` naming the location DIR/ and the
 * part name sub/path. Names are byte strings (format/byte-string.ts).
 */
export interface Candidate {
  /** The path to open. */
  path: string;
  /** The text before `//` with one `/` (e.g. `pool/`), or '' when the argument had no `//`. */
  location: string;
  /** The part's name after the location (what `Label:` is followed by in [Parts]). */
  leaf: string;
  size: number;
  identity: FileIdentity;
  /** A file inside a disc image (`IMAGE//`): its byte ranges in `path`, the image; `identity` is the image's. */
  ranges?: FileRange[];
}

/**
 * Splits an argument at its last `//`, as jigdo-file does: `tree///` is the location `tree//` (files `f1`), and
 * `./tree//sub//` the location `./tree//sub/` (files `g`). At the first, the .jigdo named other locations than
 * jigdo-file's, so a `--label` written for jigdo-file's did not apply.
 */
function splitLocation(arg: string): { location: string; leaf: string } {
  const at = arg.lastIndexOf('//');
  if (at < 0) return { location: '', leaf: arg };
  return { location: arg.slice(0, at + 1), leaf: arg.slice(at + 2) };
}

/** The candidates found, group by group: a folder's from the walk worker, an old disc image's (`IMAGE//`) read here. */
class CandidateGroups {
  private readonly seen = new Set<string>();

  constructor(private readonly warn: (line: string) => void) {}

  /** A batch from the walk worker (it keeps its own paths unique). */
  walked(batch: WalkBatch, args: WalkArg[]): Candidate[] {
    return batch.leaves.map((leaf, i) => {
      const { location } = args[batch.args[i]!]!;
      const [size, mtimeMs, ctimeMs, ino, dev] = batch.ids.slice(5 * i, 5 * i + 5) as [number, number, number, number, number];
      return { path: location + leaf, location, leaf, size, identity: { size, mtimeMs, ctimeMs, ino, dev } };
    });
  }

  /**
   * `IMAGE//`: the files of an old disc image (ISO9660, UDF; src/discfs/) are candidates, read from the image at
   * their extents and named by their paths on the disc, as if the disc's tree had been given as `DIR//`.
   */
  async disc(image: string): Promise<Candidate[]> {
    const fh = await open(fsPath(image), 'r').catch((err: unknown) => {
      this.warn(`${shown(image)}: ${errorMessage(err)} (ignored)`);
      return undefined;
    });
    const list: Candidate[] = [];
    if (!fh) return list;
    try {
      const st = await fh.stat();
      const read = fileReader(fh);
      if ((await detectDisc(read, st.size)) === null) {
        this.warn(`${shown(image)}//: not a disc image (ignored)`);
        return list;
      }
      const listing = await listDisc(read, st.size);
      for (const w of listing.warnings) this.warn(`${shown(image)}: ${w}`);
      const identity = identityOf(st);
      for (const f of listing.files) {
        const key = `${image}//${f.path}`;
        if (f.size === 0 || this.seen.has(key)) continue;
        this.seen.add(key);
        list.push({ path: image, location: `${image}/`, leaf: f.path, size: f.size, identity, ranges: f.extents.map((e) => ({ ...e })) });
      }
    } catch (err) {
      this.warn(`${shown(image)}: ${err instanceof DiscFormatError ? err.message : errorMessage(err)} (ignored)`);
    } finally {
      await fh.close();
    }
    return list;
  }
}

/** The candidate files named by make-template's arguments, group by group as they are found (see listCandidates). */
export interface Listing {
  groups: AsyncGenerator<Candidate[]>;
  /** Ends the walk if it still runs (the run failed before it took every group). */
  close: () => Promise<void>;
}

/**
 * The candidate files named by `args` (files or folders), in jigdo-file's order, in groups as the walk worker finds
 * them: the walk is started now and runs ahead, so their checksums are read while it goes on.
 */
export async function listCandidates(args: string[], warn: (line: string) => void): Promise<Listing> {
  const groups = new CandidateGroups(warn);
  const discs = await Promise.all(args.map(async (arg) => {
    const image = arg.endsWith('//') ? arg.slice(0, -2) : undefined;
    return image && (await stat(fsPath(image)).catch(() => undefined))?.isFile() ? image : undefined;
  }));
  const walkArgs = args.map((arg, i) => (discs[i] === undefined ? splitLocation(arg) : null));
  const worker = startWorker(import.meta.url, './walk-worker');
  const replies = walkReplies(worker, walkArgs);
  async function* found(): AsyncGenerator<Candidate[]> {
    try {
      for await (const reply of replies) {
        if (reply.op === 'found') yield groups.walked(reply, walkArgs as WalkArg[]);
        else if (reply.op === 'warn') warn(reply.line);
        else yield await groups.disc(discs[reply.arg]!);
      }
    } finally {
      await worker.terminate();
    }
  }
  return { groups: found(), close: async () => void (await worker.terminate()) };
}

/** The walk worker's replies to `args` (sent at once), in order, until `done`; its `error` (or its death) is thrown. */
function walkReplies(worker: Worker, args: Array<WalkArg | null>): AsyncGenerator<Exclude<WalkReply, { op: 'done' | 'error' }>> {
  const queue: WalkReply[] = [];
  let wake: (() => void) | undefined;
  const push = (r: WalkReply): void => {
    queue.push(r);
    wake?.();
  };
  worker.on('message', push);
  worker.on('error', (err) => push({ op: 'error', error: errorMessage(err) }));
  worker.on('exit', (code) => push({ op: 'error', error: `walk worker exited (code ${code})` }));
  worker.postMessage(args); // now: the replies wait in `queue` until they are taken
  async function* taken(): AsyncGenerator<Exclude<WalkReply, { op: 'done' | 'error' }>> {
    for (;;) {
      if (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      const r = queue.shift()!;
      if (r.op === 'done') return;
      if (r.op === 'error') throw new Error(r.error);
      yield r;
    }
  }
  return taken();
}

/** The names listed in a `--files-from` file (`-` = stdin), one per line, blank lines skipped. */
export async function readFilesFrom(file: string): Promise<string[]> {
  let buf: Buffer;
  try {
    buf = file === '-' ? await readStdin() : await readFile(fsPath(file));
  } catch (err) {
    throw new JigdoError(file, `cannot read the file list: ${errorMessage(err)}`);
  }
  return decodeBytes(buf).split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l !== '');
}

async function readStdin(): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of process.stdin) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}
