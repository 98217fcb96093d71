import { open, type FileHandle } from 'node:fs/promises';
import { LRUCache } from 'lru-cache';
import { fsPath } from '../format/byte-string.js';
import { UnavailableError, errorMessage } from '../format/errors.js';
import type { ImageLayout } from '../image/layout.js';
import { assertVerified, copyRuns, type VerifiedCopy } from './verified-copy.js';
import { throwIfAborted, unlessAborted } from '../util/settle.js';
import { oncePerKey } from '../util/once-per-key.js';
import { assertUnchanged, openUnchanged } from './open-copy.js';
import type { PartProvider } from './part-provider.js';
import { UnlinkedSweep } from './unlinked-sweep.js';

export type { PartProvider } from './part-provider.js';

/** How often an open copy is re-checked (its identity) so that a file changed under us is never served. */
const RECHECK_MS = 1000;
/** A part found missing is looked for again after this long (a mount lives long; files appear). */
const MISSING_RETRY_MS = 10_000;
/** Prefetch requests kept waiting at most (older ones are dropped: the reader has moved on). */
const PREFETCH_QUEUE = 1024;

/**
 * An open file of a located copy, with the reads using it right now: a handle the LRU evicts is closed
 * as soon as its last read ends (not on a timer, under which fast readers piled up thousands of fds).
 */
interface OpenCopy {
  fh: Promise<FileHandle>;
  users: number;
  evicted: boolean;
}

interface Located {
  copy: VerifiedCopy;
  provider: string;
  handle?: OpenCopy;
  checkedAt: number;
  /** A read took bytes from it: once it is forgotten, the part's next copy is not the output's only source. */
  read?: boolean;
}

/** Open files kept for located parts. */
export const OPEN_HANDLES = 128;
/**
 * Evicted files still open because reads use them, at most: beyond this a read waits for one to close
 * before it opens another. A 1 MiB read-ahead block of 2 KiB parts reads 500 parts at once, and eight
 * blocks run together: without a bound that was thousands of open files, and EMFILE for the whole daemon.
 */
export const LINGERING_HANDLES = 64;

/**
 * Where each part's verified bytes are: asks the providers in order, once per part however many readers
 * wait, and reads from the copy it found through a bounded set of open files.
 *
 * Fields: `located`, `inflight`, `missingSince` and `failed` say where each part is (a part is in at most
 * one of located/inflight); `handles` (the LRU) and `lingering`/`lingerWaiters` own the open files, each
 * OpenCopy counting its readers in `users`; `prefetchQueue`/`prefetchActive` the look-ups made ahead.
 * Awaits, in order: locate (one search per part), then handleFor (a free slot among lingering files, then
 * the file's open and identity check), then the reads; a handle is given back (releaseHandle) in a
 * finally, since an evicted one is closed only when its last reader is done.
 */
export class PartStore {
  private readonly located = new Map<string, Located>();
  private readonly inflight = new Map<string, Promise<Located>>();
  private readonly missingSince = new Map<string, { at: number; error: UnavailableError; reason: string }>();
  private readonly handles: LRUCache<string, Located>;
  private closing = false;
  /** Parts whose verified copy could not be read (vanished, changed, I/O error). */
  private readonly failed = new Set<string>();
  /** Parts read from a copy since forgotten: a copy taken unhashed after that is marked (VerifiedCopy.otherCopyRead). */
  private readonly readFromGone = new Set<string>();
  readonly stats = { bytesRead: 0, byProvider: {} as Record<string, number>, prefetched: 0 };
  readonly recentErrors: string[] = [];
  /**
   * Parts located ahead of readers at the same time (see prefetch). Four times the default HTTP connections:
   * at a 20 ms round trip a stretch of small parts costs one round trip per part, and with fewer look-ups in
   * flight the mirror's connections waited between them (`cp` of a mount over HTTP, 2 GB fixture, alternated:
   * median 16.9 s at 8 and 32 MiB ahead, 15.0 s at 16 and 96 MiB; in a later run 15.7 s at 16 (7 rounds) and
   * 15.0 s at 32 (4 rounds); BENCHMARKS.md). Each waits for a connection: the mirror sees no more requests at once.
   */
  private readonly prefetchConcurrency = 32;
  private readonly prefetchQueue = new Set<string>();
  private prefetchActive = 0;
  /** Evicted handles not closed yet (reads still use them, or closing), and the reads waiting for one to close. */
  private lingering = 0;
  private readonly lingerWaiters: Array<() => void> = [];
  /** Located parts by their copy's path, and those a sequential reader passed (see holds); the cache watches removed. */
  private readonly byPath = new Map<string, string>();
  private readonly passedKeys = new Set<string>();
  private readonly unwatch: Array<() => void>;
  /** Closes the open cache files unlinked by any process (this one's evictions say so themselves: gone). */
  private readonly sweep = new UnlinkedSweep(
    () => [...this.handles.entries()].flatMap(([key, loc]) => (loc.handle && !loc.copy.userFile ? [{ key, fh: loc.handle.fh }] : [])),
    ({ key, fh }) => {
      if (this.located.get(key)?.handle?.fh === fh) this.forget(key); // not a copy located again since the look
    },
  );

  constructor(
    private readonly layout: ImageLayout,
    private readonly providers: PartProvider[],
    private readonly log: (line: string) => void = () => undefined,
    private readonly logMissing = true,
  ) {
    this.handles = new LRUCache<string, Located>({
      max: OPEN_HANDLES,
      dispose: (loc, _key, reason) => {
        if (reason === 'delete' && this.closing) return;
        const h = loc.handle;
        loc.handle = undefined;
        if (!h) return;
        h.evicted = true;
        this.lingering++;
        if (h.users === 0) this.retire(h); // else the last read using it does (releaseHandle)
      },
    });
    const watcher = { holds: (file: string, readingOnly: boolean) => this.holds(file, readingOnly), gone: (files: string[]) => this.gone(files) };
    this.unwatch = providers.flatMap((p) => p.watch?.(watcher) ?? []);
  }

  /**
   * Whether the disk cache should spare `file` when it makes room (DiskRoom): a read uses it now (evicted, its blocks
   * stay until it is closed), or (unless `readingOnly`) it is located and a sequential reader has not passed it.
   */
  private holds(file: string, readingOnly: boolean): boolean {
    const key = this.byPath.get(file);
    const loc = key === undefined ? undefined : this.located.get(key);
    if (!loc || loc.copy.path !== file) return false;
    return (loc.handle?.users ?? 0) > 0 || (!readingOnly && !this.passedKeys.has(key!));
  }

  /** These cache files were evicted to make room: forgotten, so their open files close once no read uses them. */
  private gone(files: string[]): void {
    for (const file of files) {
      const key = this.byPath.get(file);
      if (key !== undefined && this.located.get(key)?.copy.path === file) this.forget(key);
    }
  }

  /** Why the part was last found missing: each source's problem, or that none has it. */
  missingReason(key: string): string | undefined {
    return this.missingSince.get(key)?.reason;
  }

  /** A verified copy of the part was found and not forgotten since. */
  isLocated(key: string): boolean {
    return this.located.has(key);
  }

  /**
   * Finds (once) a verified copy of the part; throws UnavailableError naming the part when none exists. `ahead`: for
   * prefetch (PartProvider.find); a read that comes while the look-up runs waits for it as it is.
   */
  locate(key: string, ahead = false): Promise<Located> {
    const known = this.located.get(key);
    if (known) return Promise.resolve(known);
    const missing = this.missingSince.get(key);
    if (missing && Date.now() - missing.at < MISSING_RETRY_MS) return Promise.reject(missing.error);
    return oncePerKey(this.inflight, key, () => this.search(key, ahead));
  }

  private async search(key: string, ahead: boolean): Promise<Located> {
    const need = this.layout.parts.get(key);
    if (!need) throw new UnavailableError(`part ${key} is not in this image`);
    const problems: string[] = [];
    for (const provider of this.providers) {
      try {
        const copy = await provider.find(key, ahead);
        if (copy) {
          assertVerified(copy, provider.name);
          if (copy.deferred && this.readFromGone.has(key)) copy.otherCopyRead = true;
          const loc: Located = { copy, provider: provider.name, checkedAt: Date.now() };
          this.located.set(key, loc);
          this.byPath.set(copy.path, key);
          this.passedKeys.delete(key);
          this.missingSince.delete(key);
          this.failed.delete(key);
          return loc;
        }
      } catch (err) {
        problems.push(`${provider.name}: ${errorMessage(err)}`);
      }
    }
    const reason = problems.length ? problems.join('; ') : 'no source has it';
    const error = new UnavailableError(
      `part ${key} (${need.length} bytes, at image offset ${need.offsets[0]}) is not available` + (problems.length ? `: ${reason}` : ' from any source'),
    );
    this.missingSince.set(key, { at: Date.now(), error, reason });
    // (Not logged once the store is closing: a download cut by the shutdown is no missing part.)
    this.noteError(error.message, this.logMissing && !this.closing);
    throw error;
  }

  /**
   * Locates these parts ahead of the reads that will need them (a sequential reader announces what comes
   * next), `prefetchConcurrency` at a time; parts known, in flight or recently missing are skipped.
   */
  prefetch(keys: Iterable<string>): void {
    for (const key of keys) {
      if (this.located.has(key) || this.inflight.has(key) || this.prefetchQueue.has(key)) continue;
      const missing = this.missingSince.get(key);
      if (missing && Date.now() - missing.at < MISSING_RETRY_MS) continue;
      this.prefetchQueue.add(key);
    }
    for (const key of this.prefetchQueue) {
      if (this.prefetchQueue.size <= PREFETCH_QUEUE) break;
      this.prefetchQueue.delete(key);
    }
    this.pumpPrefetch();
  }

  private pumpPrefetch(): void {
    while (!this.closing && this.prefetchActive < this.prefetchConcurrency && this.prefetchQueue.size > 0) {
      const key = this.prefetchQueue.values().next().value!;
      this.prefetchQueue.delete(key);
      if (this.located.has(key) || this.inflight.has(key)) continue;
      this.prefetchActive++;
      this.stats.prefetched++;
      void this.locate(key, true)
        .catch(() => undefined) // a reader that needs it gets the error
        .finally(() => {
          this.prefetchActive--;
          this.pumpPrefetch();
        });
    }
  }

  /**
   * A sequential reader (make-image's stream, a `cp` of a mount) has read these parts at their last place in the
   * image: each located part's provider is told (PartProvider.passed), by provider.
   */
  passed(keys: string[]): void {
    const byProvider = new Map<string, VerifiedCopy[]>();
    for (const key of keys) {
      const loc = this.located.get(key);
      if (!loc) continue;
      this.passedKeys.add(key);
      const copies = byProvider.get(loc.provider) ?? [];
      copies.push(loc.copy);
      byProvider.set(loc.provider, copies);
    }
    for (const [name, copies] of byProvider) this.provider(name)?.passed?.(copies);
  }

  /** Records a failure for `status`; logs it when asked (a mount logs, `missing` reports by itself). */
  private noteError(line: string, log = true): void {
    if (log) this.log(line);
    this.recentErrors.push(`${new Date().toISOString()} ${line}`);
    if (this.recentErrors.length > 20) this.recentErrors.shift();
  }

  /** Forgets a copy that changed or vanished, so the next read looks again. */
  private forget(key: string): void {
    const loc = this.located.get(key);
    if (loc?.read) this.readFromGone.add(key);
    if (loc && this.byPath.get(loc.copy.path) === key) this.byPath.delete(loc.copy.path);
    this.passedKeys.delete(key);
    this.located.delete(key);
    this.handles.delete(key);
  }

  /**
   * The open file of `loc`, counted as used until releaseHandle. The file it opens, and every RECHECK_MS
   * the file it reads from, must still have the identity the copy was verified with (size, mtime, ctime,
   * inode, device: an edit kept under `touch -r` moves the ctime), checked on the open handle, since that
   * is what is read. Readers sharing a handle all wait for the check made at its opening. A user's file is
   * checked after each read instead (readCopy), which sees whatever a check here would: checking here as
   * well was over half of the reader's fstat calls, each a round trip through libuv's pool (7,553 -> 3,555
   * per pass of the 2 GB fixture: scripts/count-read-ops.mjs).
   */
  private async handleFor(key: string, loc: Located): Promise<{ handle: OpenCopy; fh: FileHandle }> {
    // No await between this check and set() below: at most one more handle lingers than the bound.
    while (!loc.handle && this.lingering >= LINGERING_HANDLES && !this.closing) await new Promise<void>((r) => this.lingerWaiters.push(r));
    let handle = loc.handle;
    if (!handle) {
      // A user's file is checked after each read (readCopy), so neither here nor on the timer below.
      const fh = loc.copy.userFile ? open(fsPath(loc.copy.path), 'r') : openUnchanged(loc.copy);
      fh.catch(() => undefined);
      handle = loc.handle = { fh, users: 0, evicted: false };
      if (!loc.copy.userFile) this.sweep.opened();
      handle.users++; // before set(): setting may evict, and must not close the one being handed out
      this.handles.set(key, loc);
    } else {
      this.handles.get(key); // refresh LRU position
      handle.users++;
    }
    // Room left (this read's part was opened by another meanwhile, or its open evicted nothing): no close will follow
    // to wake the next waiting read, so this one does. Woken one at a time by retire(), the others waited for good.
    if (this.lingering < LINGERING_HANDLES) this.lingerWaiters.shift()?.();
    try {
      const fh = await handle.fh;
      if (loc.copy.stale || (!loc.copy.userFile && Date.now() - loc.checkedAt > RECHECK_MS)) {
        await assertUnchanged(fh, loc.copy);
        loc.checkedAt = Date.now();
      }
      return { handle, fh };
    } catch (err) {
      this.releaseHandle(handle);
      this.forget(key);
      throw err;
    }
  }

  private releaseHandle(handle: OpenCopy): void {
    handle.users--;
    if (handle.evicted && handle.users === 0) this.retire(handle);
  }

  /**
   * Closes an evicted handle; it stops counting as lingering only once closed: a close waits in libuv's
   * pool behind the reads queued there, and until then the descriptor is still open. Wakes one waiting read, which
   * wakes the next if it leaves room (handleFor).
   */
  private retire(handle: OpenCopy): void {
    void handle.fh
      .then((fh) => fh.close())
      .catch(() => undefined)
      .finally(() => {
        this.lingering--;
        this.lingerWaiters.shift()?.();
      });
  }

  /** Part counts by state, for `status`. */
  counts(): { total: number; verified: number; byProvider: Record<string, number>; missing: number; failed: number; inFlight: number } {
    const byProvider: Record<string, number> = {};
    for (const loc of this.located.values()) byProvider[loc.provider] = (byProvider[loc.provider] ?? 0) + 1;
    let total = 0;
    for (const p of this.layout.parts.values()) if (p.length > 0) total++;
    return { total, verified: this.located.size, byProvider, missing: this.missingSince.size, failed: this.failed.size, inFlight: this.inflight.size };
  }

  private provider(name: string): PartProvider | undefined {
    return this.providers.find((p) => p.name === name);
  }

  /** Closes every open copy (in-flight reads must be over). */
  async close(): Promise<void> {
    this.closing = true;
    this.sweep.stop();
    for (const unwatch of this.unwatch) unwatch();
    this.prefetchQueue.clear();
    for (const wake of this.lingerWaiters.splice(0)) wake();
    const open = [...this.located.values()].map((l) => l.handle).filter((h) => h !== undefined);
    this.located.clear();
    this.handles.clear();
    await Promise.all(open.map((h) => h.fh.then((fh) => fh.close()).catch(() => undefined)));
  }

  /**
   * Reads `length` bytes of the part from `from` into `target` at `at`. Once `signal` aborted, no new
   * write into `target` starts and the wait for the part ends (see settleAll).
   */
  async readInto(key: string, from: number, length: number, target: Buffer, at: number, signal?: AbortSignal): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      // A located part needs no wait (and no abort listener): the common case of a sequential reader.
      const loc = this.located.get(key) ?? (await unlessAborted(this.locate(key), signal));
      try {
        loc.read = true; // from the start: a copy forgotten while a read of it runs has given the output bytes too
        await this.readCopy(key, loc, from, length, target, at, signal);
        this.stats.bytesRead += length;
        this.stats.byProvider[loc.provider] = (this.stats.byProvider[loc.provider] ?? 0) + length;
        return;
      } catch (err) {
        if (signal?.aborted) throw err; // told to stop: nothing wrong with this copy
        // A copy taken unhashed whose bytes did not all go into the output is never confirmed by its checksum: stale.
        if (loc.copy.deferred) loc.copy.stale = true;
        this.forget(key);
        this.provider(loc.provider)?.unreadable?.(key, loc.copy);
        if (attempt === 0 && loc.copy.medium !== undefined) this.noteError(`part ${key}: ${errorMessage(err)}: looking for it again`, this.logMissing);
        if (attempt >= 1) {
          this.failed.add(key);
          const error = new UnavailableError(`part ${key}: ${errorMessage(err)}`);
          this.noteError(error.message, this.logMissing);
          throw error;
        }
      }
    }
  }

  /** Reads through the copy's open file, holding it so that an eviction meanwhile does not close it under us. */
  private async readCopy(key: string, loc: Located, from: number, length: number, target: Buffer, at: number, signal?: AbortSignal): Promise<void> {
    // Not cut short by `signal`: handleFor counts the use once it resolves, and only this finally gives it back.
    const { handle, fh } = await this.handleFor(key, loc);
    try {
      for (const run of copyRuns(loc.copy, from, length)) {
        for (let done = 0; done < run.length; ) {
          throwIfAborted(signal);
          const { bytesRead } = await fh.read(target, at + run.at + done, run.length - done, run.position + done);
          if (bytesRead === 0) throw new Error(`${loc.copy.path} is shorter than when it was verified`);
          done += bytesRead;
        }
      }
      // A user's file may be edited at any moment: unchanged after the read (any write moves the ctime)
      // means the bytes read are the verified ones. Cache files are never written after their commit.
      if (loc.copy.userFile) await assertUnchanged(fh, loc.copy);
    } finally {
      this.releaseHandle(handle);
    }
  }
}
