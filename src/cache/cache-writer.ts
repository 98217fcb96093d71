import { ftruncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { unlink, type FileHandle } from 'node:fs/promises';
import { atExit } from '../util/exit-leftovers.js';
import type { SumCheck, VerifiedCopy } from '../sources/verified-copy.js';
import type { Lock } from './cache-lock.js';
import type { CacheFs } from './cache-fs.js';
import { keptLengthFile } from './temp-files.js';
import type { Release, Written } from './disk-room.js';

/** A temporary file of the cache (PartCache.tempFile). */
export interface TempFile {
  file: string;
  fh: FileHandle;
  /** Off the exit list: call once the file was renamed or removed. */
  unlist: () => void;
}

/**
 * What a writer commits through: the cache, which hashes the file and renames it (PartCache.verifyAndCommit), or
 * keeps it unhashed for a job that checks its whole output (PartCache.commitUnhashed).
 */
export interface CommitTarget {
  verifyAndCommit(tmp: string, final: string, fh: FileHandle, sums: SumCheck[], known?: SumCheck, size?: number): Promise<VerifiedCopy | undefined>;
  /** Takes `fh` once it returned (the writer does not close it then). `durable`: see PartCache.commitUnhashed. */
  commitUnhashed(tmp: string, final: string, fh: FileHandle, size: number | undefined, durable: boolean): Promise<VerifiedCopy>;
  /** Told when a resumable writer leaves its file for the next one (the size limit counts it from then on). */
  readonly eviction?: { leftoversChanged(): void; leftoversChangedAtExit(): void };
  /** Room on the disk for the bytes about to be written (PartCache.room: DiskRoom). */
  readonly room?: { reserve(bytes: number, what: string, written?: Written): Promise<Release> };
}

/**
 * The right to write one cache file: bytes go to a temporary file (`fh`, at their final positions),
 * then `commit` hashes it and renames it into place only if a checksum matched.
 *
 * Fields: `fh` and the file `tmp` until the writer is done, then `lock` (released last, after the rename
 * or the removal, so a waiting process finds the final file or none). `done` once committed or aborted.
 */
export class CacheWriter {
  private done = false;
  /** A commit runs: abort leaves the writer to it. */
  private committing = false;
  /** The size allocate set (writes stay inside it: a part's ranges), so the commit need not ask the file. */
  private size: number | undefined;
  /** The disk room allocate reserved, given back when the writer is done (committed, the file counts in the cache). */
  private release: Release | undefined;
  private markFinished!: () => void;
  /** How many bytes from the file's start are written (keepWritten); undefined: the whole file is kept as it is. */
  private written: (() => number) | undefined;
  private unhookExit: (() => void) | undefined;
  /** `discard` removed the file: its absence says nothing of the cache folder (RemoteParts). */
  discarded = false;
  /** Resolves once the writer is done: committed, or aborted with its file removed; its lock released either way. */
  readonly finished = new Promise<void>((resolve) => (this.markFinished = resolve));

  constructor(
    private readonly cache: CommitTarget,
    private readonly final: string,
    readonly tmp: string,
    readonly fh: FileHandle,
    private readonly lock: Lock,
    private readonly fs: CacheFs,
    /** Takes `tmp` off the exit list (exit-leftovers.ts: PartCache.tempFile): it was renamed into the cache, or removed. */
    private readonly unlist: () => void,
    /** `tmp` is kept when the writer gives up (abort), for the next writer to go on with (PartCache.begin); discard removes it. */
    private readonly resumable = false,
  ) {}

  /**
   * For a resumable writer whose bytes are not written in order (a part's ranges): when it gives up, or the process
   * ends (a Ctrl-C: atExit), the file is cut to the `written()` bytes at its start that are known to be there, and the
   * next writer of it goes on from the file's size (PartFetch). Bytes past that are fetched again.
   */
  keepWritten(written: () => number): void {
    if (!this.resumable) return;
    this.written = written;
    this.unhookExit ??= atExit(() => {
      const length = written();
      // (Nothing written: no file is left, as for a download that is not resumable.)
      if (length === 0) return unlinkSync(this.tmp);
      this.cache.eviction?.leftoversChangedAtExit(); // (first: the file stays whatever fails below)
      ftruncateSync(this.fh.fd, length);
      // The fetch threads may write past it until the process is gone: the length is recorded where no late write
      // reaches, and the next writer cuts the file to it (openResumeFile). (Last: a full disk may refuse it.)
      writeFileSync(keptLengthFile(this.tmp), String(length), { mode: 0o600 });
    });
  }

  /** The bytes an earlier writer left in the file (a resumable one's), or 0. */
  async leftBytes(): Promise<number> {
    return this.resumable ? (await this.fh.stat()).size : 0;
  }

  /** Whether allocate ran: a writer that commits without it took an earlier run's whole file (PartFetch.resume). */
  get allocated(): boolean {
    return this.size !== undefined;
  }

  /**
   * Reserves room on the disk for `size` bytes (waiting, or evicting, for it: DiskRoom), then sets the temporary
   * file's size (holes read as zeros until written). `what` names the file in the error when it cannot fit.
   */
  async allocate(size: number, what = 'a file'): Promise<void> {
    this.release ??= await this.cache.room?.reserve(size, what, async () => (await this.fh.stat()).blocks * 512);
    await this.fs.ftruncate(this.fh, size);
    this.size = size;
  }

  /**
   * Verifies the written bytes against `sums` (any one matching is enough) and moves them into place.
   * Returns undefined on a mismatch (the temporary file stays open for another try). `known`: the file's hash
   * of that kind, taken as its bytes were written (the file is not read again for it).
   */
  async commit(sums: SumCheck[], known?: SumCheck): Promise<VerifiedCopy | undefined> {
    if (this.done) throw new Error('cache writer already finished');
    return this.whileCommitting(async () => {
      const copy = await this.cache.verifyAndCommit(this.tmp, this.final, this.fh, sums, known, this.size);
      if (copy) await this.finish(false);
      return copy;
    });
  }

  /** Moves the written bytes into the cache unhashed (make-image's image checksum checks them: PartCache.commitUnhashed). */
  async commitUnhashed(durable = true): Promise<VerifiedCopy> {
    if (this.done) throw new Error('cache writer already finished');
    return this.whileCommitting(async () => {
      const copy = await this.cache.commitUnhashed(this.tmp, this.final, this.fh, this.size, durable);
      await this.finish(false, false); // the cache closes fh once it synced it
      return copy;
    });
  }

  /** Runs a commit with `committing` set (abort then leaves the writer to it). */
  private async whileCommitting<T>(commit: () => Promise<T>): Promise<T> {
    this.committing = true;
    try {
      return await commit();
    } finally {
      this.committing = false;
    }
  }

  /**
   * Gives up: removes the temporary file (not a resumable writer's: see discard) and releases the lock. Not while a commit runs (the end of the cache's use
   * aborting what is still open, OpenWriters.end): that closed the file under the commit's rename, and the part was
   * reported failed though it was in the cache; the commit finishes the writer itself.
   */
  async abort(): Promise<void> {
    if (!this.done && !this.committing) await this.finish(!this.resumable, true, false);
  }

  /** Gives up and removes the temporary file, also a resumable one (its bytes are not worth going on with). */
  async discard(): Promise<void> {
    if (this.done || this.committing) return;
    this.discarded = true;
    await this.finish(true, true, false);
  }

  private async finish(removeTmp: boolean, closeFh = true, committed = true): Promise<void> {
    this.done = true;
    this.unhookExit?.();
    // A resumable file given up on keeps what is known written (keepWritten), or its size; nothing: no file is left.
    const kept = !removeTmp && !committed ? (this.written?.() ?? (await this.fh.stat().then((st) => st.size, () => 1))) : undefined;
    if (kept === 0) removeTmp = true;
    else if (kept !== undefined && this.written) await this.fs.ftruncate(this.fh, kept).catch(() => undefined);
    if (closeFh) await this.fh.close().catch(() => undefined);
    if (removeTmp) await unlink(this.tmp).catch(() => undefined);
    this.unlist();
    this.release?.();
    await this.lock.release();
    if (kept !== undefined && !removeTmp) this.cache.eviction?.leftoversChanged(); // (once the lock is gone: counted from then on)
    this.markFinished();
  }
}
