import { stat } from 'node:fs/promises';
import { fsPath } from '../format/byte-string.js';
import { checksumKey, type ChecksumKind } from '../format/checksum.js';
import { JigdoError, errorMessage } from '../format/errors.js';
import { identityOf, identityOfStats, unchangedSize, type FileIdentity } from './file-identity.js';
import type { HashIndex } from './hash-index.js';
import type { FileRange } from '../util/worker-protocol.js';

/**
 * The only place where bytes on disk become a `VerifiedCopy`. Every way of vouching for a file is a
 * function here: a local region whose checksum (recorded in the hash index, or hashed now) is the part's,
 * a cache file hashed before its rename, a file under a checksum name in the cache (it was hashed when
 * written), and a template checked against the .jigdo. The part store takes nothing else, so a wrong
 * byte cannot be served by forgetting a check: there is no other way to get the type.
 */

/**
 * A copy of a part: the bytes of `path` from `offset`, and the file's identity when it was
 * verified (size, mtime, ctime, inode, device): a copy whose file no longer has it is not served.
 */
export interface LocalCopy extends FileIdentity {
  path: string;
  offset: number;
  /** Set once a later hash of the copy did not match (see LocalSources.recheck): readers must look for the part again. */
  stale?: boolean;
  /**
   * A file of the user's, which may be edited in place at any time (not a cache file, whose name is its
   * checksum and which nothing writes after its commit): the part store checks its identity after every read.
   */
  userFile?: boolean;
  /**
   * The part is these ranges of `path`, in order (a file inside a disc image, which may be fragmented);
   * `offset` is then the first range's. Absent: the part is `path` from `offset` on.
   */
  ranges?: FileRange[];
  /**
   * Not hashed: taken on trust because the job checks its whole output (make-image: the image checksum) and
   * hashes every part again if that fails. Only a job that asked for it (ImageSession.deferChecks) gets them
   * (LocalSources: copies the .jigdo names; RemoteParts: parts from a mirror that proved right); a mount never does.
   */
  deferred?: boolean;
  /**
   * Taken (unhashed) after the job's output had read bytes of the part from another copy, which then went (evicted by
   * another process, changed): the output's checksum vouches only for the bytes read from each, so this one is never
   * confirmed by it (a mirror's wrong bytes where the other copy's right ones were read got a checksum name).
   */
  otherCopyRead?: boolean;
}

declare const verifiedBrand: unique symbol;

/** A LocalCopy this module vouched for. The brand exists only in types; `vouched` holds the proof at run time. */
export type VerifiedCopy = LocalCopy & { readonly [verifiedBrand]: true };

/**
 * The objects this module made: a cast (`as VerifiedCopy`) or a spread copy with another path is not
 * among them, so assertVerified catches what the types cannot.
 */
const vouched = new WeakSet<LocalCopy>();

function vouch(copy: LocalCopy): VerifiedCopy {
  vouched.add(copy);
  return copy as VerifiedCopy;
}

/** Throws unless `copy` came from this module (the part store checks every copy a provider gives). */
export function assertVerified(copy: LocalCopy, from: string): asserts copy is VerifiedCopy {
  if (!vouched.has(copy)) throw new Error(`${from} gave ${copy.path} without verifying it`);
}

/** Hashes a whole file, or `length` bytes of it from `offset`. */
export type HashFile = (file: string, kind: ChecksumKind, offset?: number, length?: number, ranges?: FileRange[]) => Promise<Buffer>;

/** Checksums that a file may have; any one matching is enough (as in jigdo-lite). */
export type SumCheck = [ChecksumKind, Buffer];

/** What the local check found at one candidate place. */
export interface LocalCheck {
  /** The verified copy, when the checksum is the part's. */
  copy?: VerifiedCopy;
  /** The checksum the index had for this place before the file changed, when it was hashed now. */
  was?: string;
  /** True when the bytes were hashed now (not known from the index). */
  hashed: boolean;
  /** Why the place could not be looked at (there, but unreadable or not a regular file): named if the .jigdo names it. */
  problem?: string;
}

/**
 * Part `key` at `file` (the whole file when `whole`, else `length` bytes from `offset`, a region of a
 * jigdo-lite .tmp): its checksum comes from the index when the file's identity is the recorded one, else
 * it is hashed now (and recorded). The copy carries the identity from before hashing, so a change during
 * the hash shows later as a changed identity. Undefined when the file is not there or has the wrong size;
 * a failing hash throws.
 */
export async function verifyLocalCopy(
  index: HashIndex,
  hash: HashFile,
  kind: ChecksumKind,
  at: { file: string; offset: number; length: number; whole: boolean; ranges?: FileRange[] },
  key: string,
  /** The place is named for this part (a `--local` tree, a `file:` URI) and the job checks its whole output: no hash now. */
  defer = false,
): Promise<LocalCheck | undefined> {
  const { file, offset, length, whole, ranges } = at;
  const st = await stat(fsPath(file)).catch((err: NodeJS.ErrnoException) => err);
  if (st instanceof Error) return st.code === 'ENOENT' || st.code === 'ENOTDIR' ? undefined : { hashed: false, problem: `cannot be read (${errorMessage(st)})` };
  // A block device only as an old disc image (a place given by its ranges: `--scan /dev/sr0`), never as a whole file.
  if (!(st.isFile() || (ranges && st.isBlockDevice()))) return { hashed: false, problem: 'is not a regular file' };
  const id = await identityOfStats(st).catch(() => undefined); // a device: its size and medium now (none: gone)
  if (!id) return undefined;
  if (ranges ? whole || ranges[0]?.offset !== offset || !rangesFit(ranges, length, id.size) : whole ? id.size !== length : id.size < offset + length) return undefined;
  const [o, l] = indexField(whole ? undefined : { offset, length, ranges });
  const copyHere = (): LocalCopy => ({ path: file, offset, ...id, userFile: true, ...(ranges ? { ranges: ranges.map((r) => ({ ...r })) } : {}) });
  const matches = (sum: string): VerifiedCopy | undefined => (sum === key ? vouch(copyHere()) : undefined);
  const known = index.get(file, id, kind, o, l);
  if (known) return { copy: matches(known), hashed: false };
  if (defer) return { copy: vouch({ ...copyHere(), deferred: true }), hashed: false };
  const was = index.previous(file, kind, o, l);
  const sum = checksumKey(await hash(file, kind, offset, length, ranges));
  // Hashed by name: replaced or written meanwhile, the checksum may be another file's. Not recorded, not used.
  if ((await unchangedSize({ path: file, ...id })) === undefined) return { hashed: true };
  index.set(file, id, kind, sum, o, l);
  return { copy: matches(sum), was, hashed: true };
}

/**
 * Where the hash index keeps a place's checksum (HashIndex.get/set `offset`, `length`): nothing for a whole
 * file, else the region's start and length. Several ranges are recorded under all of them: a region with the
 * same start and length holds other bytes.
 */
export function indexField(region?: { offset: number; length: number; ranges?: FileRange[] }): [number | undefined, number | string | undefined] {
  if (!region) return [undefined, undefined];
  const { offset, length, ranges } = region;
  return [offset, ranges && ranges.length > 1 ? `${length}:${ranges.map((r) => `${r.offset}+${r.length}`).join(',')}` : length];
}

/** The ranges start at `ranges[0]`, add up to `length` and lie inside a file of `size` bytes. */
function rangesFit(ranges: FileRange[], length: number, size: number): boolean {
  let total = 0;
  for (const r of ranges) {
    if (!Number.isSafeInteger(r.offset) || !Number.isSafeInteger(r.length) || r.offset < 0 || r.length <= 0 || r.offset + r.length > size) return false;
    total += r.length;
  }
  return ranges.length > 0 && total === length;
}

/**
 * Where bytes [from, from + length) of a copy's part are in its file: runs of (file position, length, place in
 * the part's slice). One run for a plain copy; for a part made of ranges, one per range it touches.
 */
export function copyRuns(copy: Pick<LocalCopy, 'path' | 'offset' | 'ranges'>, from: number, length: number): Array<{ position: number; length: number; at: number }> {
  if (!copy.ranges) return [{ position: copy.offset + from, length, at: 0 }];
  const out: Array<{ position: number; length: number; at: number }> = [];
  let start = 0;
  for (const r of copy.ranges) {
    const lo = Math.max(from, start);
    const hi = Math.min(from + length, start + r.length);
    if (lo < hi) out.push({ position: r.offset + (lo - start), length: hi - lo, at: lo - from });
    start += r.length;
  }
  if (from + length > start) throw new Error(`${copy.path}: bytes ${from}+${length} lie beyond the part's ranges (${start} bytes)`);
  return out;
}

/**
 * A whole file (the template) checked against `expected` in order, each checksum from the index or hashed
 * now (and recorded). Undefined when none matches.
 *
 * `opened`: the file the caller opened and will read, by its identity (fstat) and a name that leads to it whatever
 * happens to `file` meanwhile (/proc/self/fd/N): what is hashed. Without it, `file` is hashed by its name, and its
 * identity must be the same after the hash as before (a rename changes the ctime of the file it moves). A template
 * renamed into place between the caller's open and a check by name (a mirror's sync) had the new file's checksum
 * vouch for the old one the caller read: make-image built the old image and reported success.
 */
export async function verifyWholeFile(
  index: HashIndex,
  hash: HashFile,
  file: string,
  expected: SumCheck[],
  /** `path` undefined: no /proc (a container or chroot without it): the name is hashed, and must lead to the file opened. */
  opened?: { identity: FileIdentity; path?: string },
): Promise<VerifiedCopy | undefined> {
  const id = opened?.identity ?? identityOf(await stat(fsPath(file)));
  if (opened && !opened.path && (await unchangedSize({ path: file, ...id })) === undefined) {
    throw new JigdoError(file, 'was replaced while it was being opened (being updated?): run again');
  }
  const hashed = opened?.path ?? file;
  for (const [kind, sum] of expected) {
    let key = index.get(file, id, kind);
    if (!key) {
      key = checksumKey(await hash(hashed, kind));
      if (!(await hashedWhole(hashed, id, hashed !== file))) {
        throw new JigdoError(file, 'changed while it was being checked (being updated?): run again');
      }
      index.set(file, id, kind, key);
    }
    if (key === checksumKey(sum)) return vouch({ path: file, offset: 0, ...id });
  }
  return undefined;
}

/**
 * What was hashed is the file of identity `id`, unchanged. By name: the same identity after the hash (a rename changes
 * the ctime of the file it moves). Through an open descriptor (`opened`): it is that file whatever happens to the name,
 * so only a write into it matters: the same size and mtime (not the ctime, which another process's access-time
 * refresh of a cached template moves).
 */
async function hashedWhole(file: string, id: FileIdentity, opened: boolean): Promise<boolean> {
  if (!opened) return (await unchangedSize({ path: file, ...id })) !== undefined;
  const now = await stat(file).catch(() => undefined);
  return now !== undefined && now.size === id.size && now.mtimeMs === id.mtimeMs;
}

/**
 * The cache's commit: hashes the temporary file `tmp` and, only if one of `sums` matches, lets `place`
 * move it to its checksum name; the copy `place` returns is then verified. Nothing is placed when `sums`
 * is empty: there would be nothing to check the bytes against.
 */
export async function commitIfMatches(hash: HashFile, tmp: string, sums: SumCheck[], place: () => Promise<LocalCopy>): Promise<VerifiedCopy | undefined> {
  for (const [kind, sum] of sums) {
    if ((await hash(tmp, kind)).equals(sum)) return vouch(await place());
  }
  return undefined;
}

/**
 * A fetched part kept in the cache under a name of its own (PartCache.commitUnhashed), not hashed: taken on
 * trust because the job checks its whole output (make-image: the image checksum, see ImageSession.deferChecks).
 * It gets its checksum name only once that matched; until then any other reader hashes it first.
 */
export async function unhashedFetch(place: () => Promise<LocalCopy>): Promise<VerifiedCopy> {
  return vouch({ ...(await place()), deferred: true });
}

/**
 * A file found under a checksum name in the disk cache, with its identity now. It was verified when it
 * was written: only commitIfMatches gives a file that name, or a make-image whose image checksum matched the bytes it
 * read from that very file (PartCache.confirmUnhashed), by a rename or a link.
 */
export function underChecksumName(file: string, id: FileIdentity): VerifiedCopy {
  return vouch({ path: file, offset: 0, ...identityOf(id) });
}
