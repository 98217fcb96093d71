import { lstat, open, opendir, readFile, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { decodeBytes, fsPath, shown } from '../format/byte-string.js';
import { JigdoError, errorMessage } from '../format/errors.js';
import { DiscFormatError, detectDisc, fileReader, listDisc } from '../discfs/index.js';
import { identityOf, type FileIdentity } from '../sources/hash-index.js';
import type { FileRange } from '../util/worker-protocol.js';

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

function join(dir: string, name: string): string {
  return dir === '' || dir.endsWith('/') ? dir + name : `${dir}/${name}`;
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

class Walk {
  readonly found: Candidate[] = [];
  private readonly seen = new Set<string>();
  private readonly links: Array<{ location: string; leaf: string }> = [];
  private readonly dirs = new Set<string>();

  constructor(private readonly warn: (line: string) => void) {}

  private add(location: string, leaf: string, st: Stats): void {
    const path = location + leaf;
    if (this.seen.has(path)) return;
    this.seen.add(path);
    this.found.push({ path, location, leaf, size: st.size, identity: identityOf(st) });
  }

  async visit(location: string, leaf: string, follow: boolean): Promise<void> {
    const path = location + leaf;
    let st: Stats;
    try {
      st = follow ? await stat(fsPath(path)) : await lstat(fsPath(path));
    } catch (err) {
      this.warn(`${shown(path)}: ${errorMessage(err)} (ignored)`);
      return;
    }
    if (st.isSymbolicLink()) {
      this.links.push({ location, leaf });
    } else if (st.isFile()) {
      this.add(location, leaf, st);
    } else if (st.isDirectory()) {
      const key = `${st.dev}:${st.ino}`;
      if (this.dirs.has(key)) return; // a loop of links
      this.dirs.add(key);
      await this.directory(location, leaf);
    }
  }

  private async directory(location: string, leaf: string): Promise<void> {
    let dir;
    try {
      dir = await opendir(fsPath(location + leaf) as string, { encoding: 'buffer' as BufferEncoding });
    } catch (err) {
      this.warn(`${shown(location + leaf)}: ${errorMessage(err)} (ignored)`);
      return;
    }
    for await (const entry of dir) {
      const name = decodeBytes(entry.name as unknown as Buffer);
      await this.visit(location, leaf === '' ? name : join(leaf, name), false);
    }
  }

  /**
   * `IMAGE//`: the files of an old disc image (ISO9660, UDF; src/discfs/) are candidates, read from the image at
   * their extents and named by their paths on the disc, as if the disc's tree had been given as `DIR//`.
   */
  async disc(image: string): Promise<void> {
    const fh = await open(fsPath(image), 'r').catch((err: unknown) => {
      this.warn(`${shown(image)}: ${errorMessage(err)} (ignored)`);
      return undefined;
    });
    if (!fh) return;
    try {
      const st = await fh.stat();
      const read = fileReader(fh);
      if ((await detectDisc(read, st.size)) === null) {
        this.warn(`${shown(image)}//: not a disc image (ignored)`);
        return;
      }
      const listing = await listDisc(read, st.size);
      for (const w of listing.warnings) this.warn(`${shown(image)}: ${w}`);
      const identity = identityOf(st);
      for (const f of listing.files) {
        const key = `${image}//${f.path}`;
        if (f.size === 0 || this.seen.has(key)) continue;
        this.seen.add(key);
        this.found.push({ path: image, location: `${image}/`, leaf: f.path, size: f.size, identity, ranges: f.extents.map((e) => ({ ...e })) });
      }
    } catch (err) {
      this.warn(`${shown(image)}: ${err instanceof DiscFormatError ? err.message : errorMessage(err)} (ignored)`);
    } finally {
      await fh.close();
    }
  }

  /** Symbolic links come after everything else, as jigdo-file's RecurseDir takes them. */
  async links_(): Promise<void> {
    while (this.links.length > 0) {
      const { location, leaf } = this.links.shift()!;
      await this.visit(location, leaf, true);
    }
  }
}

/** The candidate files named by `args` (files or folders), in jigdo-file's order. */
export async function findCandidates(args: string[], warn: (line: string) => void): Promise<Candidate[]> {
  const walk = new Walk(warn);
  for (const arg of args) {
    const image = arg.endsWith('//') ? arg.slice(0, -2) : undefined;
    if (image && (await stat(fsPath(image)).catch(() => undefined))?.isFile()) {
      await walk.disc(image);
      continue;
    }
    const { location, leaf } = splitLocation(arg);
    // A link named as an argument is followed where it stands, as jigdo-file takes it (only links met inside
    // folders wait until the end).
    await walk.visit(location, leaf, true);
  }
  await walk.links_();
  return walk.found;
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
