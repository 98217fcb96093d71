import type { CacheWriter } from '../cache/cache-writer.js';
import type { ChecksumKind } from '../format/checksum.js';
import { JigdoError } from '../format/errors.js';
import type { PartNeed } from '../image/layout.js';
import type { VerifiedCopy } from '../sources/verified-copy.js';
import { backoff, sleep } from './backoff.js';
import type { FetchContext } from './fetch-context.js';
import { FetchError, ofHost, toFetchError } from './fetch-error.js';
import { PartRanges, type Range } from './part-ranges.js';
import { eachLimit } from '../util/each-limit.js';
import { onAbort } from '../util/on-abort.js';
import { HostFull, type HostTurn } from './host-limits.js';
import type { UrlCandidate } from './remote-parts.js';

/** Most attempts on one range from one mirror (the first request plus resumes after cuts). */
const MAX_REQUESTS_PER_RANGE = 4;
/** How often a request held back by another's probe of a down mirror looks whether the probe has ended. */
const PROBE_POLL_MS = 100;

/** One attempt at a part from one mirror: its parallel range streams share this. */
interface MirrorRun {
  c: UrlCandidate;
  /** Cuts the streams' requests (a permanent failure or a trickle: the others would fail alike). */
  abort: AbortController;
  /** No stream starts another request. */
  stop: boolean;
  /** The mirror ignores Range: one stream from byte 0 for the whole part. */
  wholeOnly: boolean;
}

/**
 * One part's download into its cache writer: ranges, mirrors in turn (healthy ones first, see MirrorBoard),
 * rounds of retries with backoff, and the checksum check of the commit.
 *
 * Owns the ranges' progress, which mirrors are excluded for this part and why, and which mirrors' bytes
 * are in the file now. Its streams all run on the main thread; each request waits for a request slot
 * (ctx.request), then the mirror board's admission, in that order, and nothing is held across the wait.
 */
export class PartFetch {
  private readonly ranges: PartRanges;
  /**
   * Given up on for this part, 'permanent' (404, wrong bytes) or 'soft' (may work in a later round: a mirror the board
   * skips as down, too, once it may be asked again: untilAsked): URLs, for what failed at their path, and mirrors, for
   * what failed at the host (see ofHost).
   */
  private readonly excludedUrls = new Map<string, 'permanent' | 'soft'>();
  private readonly excludedMirrors = new Map<string, 'permanent' | 'soft'>();
  /** What is left of the time this part may wait, across rounds, for down mirrors to be asked again (untilAsked). */
  private downWaitMs: number;
  /** By URL. */
  private readonly problems = new Map<string, string>();
  /** The URLs whose bytes are in the current attempt, and their mirrors. */
  private readonly contributors = new Map<string, string>();
  /** After a checksum mismatch with bytes from several mirrors: every attempt uses one mirror only. */
  private single = false;
  /** Writing into the cache failed (a full disk): the part cannot be had through this cache. */
  private localFailure: FetchError | undefined;
  /** Evictions made after a full disk (roomAfterFull). */
  private roomTries = 0;
  /** The part's hash as one request from byte 0 to its end received it (the commit need not read the file again). */
  private digest: Buffer | undefined;
  /** Bytes at the file's start an earlier run left (a Ctrl-C, a failed fetch: CacheWriter.keepWritten), not yet fetched again. */
  private resumed = 0;
  /** The whole part was asked for at once after a mirror turned out to ignore Range (run): once per part. */
  private wholeRetried = false;

  constructor(
    private readonly ctx: FetchContext,
    private readonly need: PartNeed,
    private readonly kind: ChecksumKind,
    private readonly urls: UrlCandidate[],
    private readonly writer: CacheWriter,
    /**
     * The job checks its whole output (make-image, ImageSession.deferChecks): bytes only from mirrors that proved
     * right (MirrorBoard.trusted) are cached unhashed, for the image checksum to check.
     */
    private readonly defer = false,
    /**
     * Fetched ahead of a sequential reader (PartStore.prefetch): one request for the whole part, hashed as it arrives,
     * not parallel ranges read back for their hash. Ranges cut the wait of a read that needs the part now; ahead of a
     * reader the cost counts: ranges of parts over 4 MiB were 77 % of the 2 GB fixture's bytes, read back on a worker
     * (BENCHMARKS.md, "Parts fetched ahead in one request").
     */
    private readonly whole = false,
  ) {
    this.ranges = new PartRanges(need.length, whole ? need.length : ctx.opts.rangeSize, whole ? 1 : ctx.opts.streamsPerPart);
    this.downWaitMs = ctx.opts.timeoutMs;
  }

  private restart(): void {
    this.resumed = 0;
    this.ranges.restart();
    this.contributors.clear();
    this.digest = undefined;
  }

  async run(): Promise<VerifiedCopy> {
    const { board } = this.ctx;
    const left = await this.resume();
    if (left) return left;
    this.writer.keepWritten(() => this.ranges.contiguous()); // (first: a Ctrl-C while waiting for room leaves no empty file)
    await this.writer.allocate(this.need.length, `part ${this.need.key}`).catch(async (err: unknown) => {
      await this.writer.discard(); // no room: bytes kept to resume from would take what the disk does not have
      throw err;
    });
    let probe = board.probe(board.order(this.urls));
    const { http } = this.ctx;
    for (let round = 0; round <= this.ctx.opts.retries; round++) {
      if (round > 0) {
        if (!this.forgiveSoft()) break;
        await sleep(backoff(round), http.closing);
        await this.untilAsked();
      }
      for (;;) {
        const next = probe ?? board.order(this.urls).find((c) => !this.excluded(c));
        probe = undefined;
        if (!next) break;
        http.assertOpen(next.url); // a shutdown is no mirror's failure: not retried
        if (this.single) this.restart();
        const ranged = board.acceptsRanges(next.mirror) !== false;
        await this.fromMirror(next);
        if (this.localFailure) {
          if (!(await this.roomAfterFull())) {
            await this.writer.discard(); // (bytes kept to resume from would take room from a disk that has none)
            throw new JigdoError(this.ctx.cache.dir, `part ${this.need.key}: ${this.localFailure.message}`);
          }
          continue; // room was made: the same mirror resumes where the writes stopped
        }
        if (!this.ranges.complete()) {
          // Found to ignore Range just now (a resumed part's first request starts past byte 0): at once, the whole part.
          if (!this.wholeRetried && ranged && board.acceptsRanges(next.mirror) === false && !this.excluded(next)) {
            this.wholeRetried = true; // once: a mirror pool answering ranges for some objects only would loop here
            continue;
          }
          if (!this.excluded(next)) this.excludedUrls.set(next.url, 'soft'); // never loop on one URL
          continue;
        }
        // A hash taken as the bytes arrived costs nothing more to check; else trusted bytes go in unhashed.
        if (!this.digest && this.resumed === 0 && this.unhashedFrom(this.sources)) {
          const copy = await this.writer.commitUnhashed(this.ctx.opts.keepDownloads !== false);
          board.parts.unhashed++;
          return copy;
        }
        const copy = await this.writer.commit([[this.kind, this.need.sum]], this.digest && [this.kind, this.digest]);
        if (copy) {
          for (const m of this.sources) board.partRight(m);
          return copy;
        }
        this.mismatch(next);
      }
    }
    const list = [...this.problems.values()];
    const shown = list.slice(0, 4).join('; ') + (list.length > 4 ? `; and ${list.length - 4} more` : '');
    throw new Error(`every mirror failed: ${shown || 'no mirror could be tried'}`);
  }

  /**
   * The cache's disk was full although this download had its room reserved (another process or user filled it): least
   * recently used parts go (PartCache.room), twice at most, and the download resumes. False: the failure stands.
   */
  private async roomAfterFull(): Promise<boolean> {
    if (!/ENOSPC/.test(this.localFailure!.message) || this.roomTries >= 2) return false;
    this.roomTries++;
    if (!(await this.ctx.cache.room.afterFull(this.need.length))) return false;
    this.ctx.opts.log(`cache ${this.ctx.cache.dir}: full while part ${this.need.key} was written: evicted older parts, resuming`);
    this.localFailure = undefined;
    return true;
  }

  /**
   * What an earlier run left in the writer's file (a resumable one's): a whole file is committed if it is right (a run
   * ended between the last byte and the commit), else fetched again; a shorter one is where the ranges go on from.
   * jigdo-lite goes on with a part as `wget --continue` does; a Ctrl-C dropped every part under way here.
   */
  private async resume(): Promise<VerifiedCopy | undefined> {
    const left = await this.writer.leftBytes();
    if (left === 0) return undefined;
    if (left >= this.need.length) return this.writer.commit([[this.kind, this.need.sum]]);
    this.ranges.advanceAll(left);
    this.resumed = left;
    return undefined;
  }

  /** The mirrors whose bytes make up the part as committed (for blame, should the image checksum fail). */
  get sources(): string[] {
    return [...new Set(this.contributors.values())];
  }

  private excluded(c: UrlCandidate): boolean {
    return this.excludedUrls.has(c.url) || this.excludedMirrors.has(c.mirror);
  }

  /** Bytes from these mirrors may go unhashed (see `defer`). */
  private unhashedFrom(mirrors: string[]): boolean {
    return this.defer && mirrors.length > 0 && mirrors.every((m) => this.ctx.board.trusted(m));
  }

  /**
   * Before a round: when every mirror the part may still try is down, and one of them went down by refused connections
   * (a web server restarting), waits until it may be asked (its probe is due, or another request's probe of it has
   * ended), within what is left of `downWaitMs`. Without it, a part whose only mirror was down failed at once (a mount's
   * read with EIO) though the mirror was back a second later. A mirror down by timeouts is not waited for: its probe
   * costs a timeout, and a reader gets its EIO at once.
   */
  private async untilAsked(): Promise<void> {
    const { board, http } = this.ctx;
    const mirrors = [...new Set(this.urls.filter((c) => !this.excluded(c)).map((c) => c.mirror))];
    while (mirrors.every((m) => board.refusal(m) !== undefined) && this.downWaitMs > 0 && !http.closing.aborted) {
      const quick = mirrors.map((m) => board.msToQuickProbe(m)).filter((ms) => ms !== undefined);
      const soonest = Math.min(...quick);
      // None, or not before the budget is spent (a mirror refusing for minutes: its probes come further apart): no wait.
      if (quick.length === 0 || soonest > this.downWaitMs) return;
      // Until the soonest probe is due; while one is under way (due now, but refused), a look now and then.
      const ms = Math.max(1, Math.min(this.downWaitMs, soonest || PROBE_POLL_MS));
      await sleep(ms, http.closing);
      this.downWaitMs -= ms;
    }
  }

  /** A new round: the mirrors excluded softly may be tried again; false when there is none. */
  private forgiveSoft(): boolean {
    let again = false;
    for (const map of [this.excludedUrls, this.excludedMirrors]) {
      for (const [key, why] of map) {
        if (why === 'soft') {
          map.delete(key);
          again = true;
        }
      }
    }
    return again;
  }

  /** The bytes of a complete attempt did not match the checksum: find the mirror to blame, and start again. */
  private mismatch(last: UrlCandidate): void {
    if (this.resumed > 0 && !this.digest) {
      // The bytes an earlier run left may be the wrong ones: no mirror is blamed, the whole part is fetched again.
      this.ctx.opts.log(`part ${this.need.key}: resumed from byte ${this.resumed}, it does not match its checksum: fetching it whole`);
      return this.restart();
    }
    const message = `wrong bytes for part ${this.need.key} (checksum mismatch)`;
    // One URL's bytes only (always so in single mode; none at all for an empty part): it is wrong. Only that URL:
    // another path on the same mirror may hold the right file.
    if (this.single || this.contributors.size <= 1) {
      this.ctx.board.mismatch(last.mirror, message);
      this.excludedUrls.set(last.url, 'permanent');
      this.problems.set(last.url, `${last.url}: wrong bytes (checksum mismatch)`);
      this.ctx.opts.log(`mirror ${last.mirror} served ${message}; trying the next one`);
    } else {
      this.single = true; // several URLs contributed: find out which one is wrong
    }
    this.restart();
  }

  /** Fetches what is missing from one mirror, with parallel ranges; excludes the mirror if it fails. */
  private async fromMirror(c: UrlCandidate): Promise<void> {
    const { board } = this.ctx;
    // A mirror that is down costs this part nothing: not even the wait for a request slot (nor for another part's probe
    // of it: the next mirror is tried at once; a part with no other waits for the next round's untilAsked).
    const down = board.refusal(c.mirror);
    if (down) return this.fail(c, new FetchError(c.url, 'down', down));
    const length = this.need.length;
    // A server known to ignore Range gets one stream for the whole part (restarted from 0 after a cut).
    const wholeOnly = board.acceptsRanges(c.mirror) === false;
    const run: MirrorRun = { c, abort: new AbortController(), stop: false, wholeOnly };
    const pending: Range[] = wholeOnly ? [{ start: 0, end: length, pos: 0 }] : this.ranges.unfinished();
    // A shutdown cuts the run too: its streams' waits for a turn (a host's Retry-After) end with it.
    const unhook = onAbort(this.ctx.http.closing, () => run.abort.abort());
    // Every stream has ended before this returns, even when one threw: the caller may close the file next.
    await eachLimit(pending, this.ctx.opts.streamsPerPart, (r) => this.rangeFromMirror(run, r), () => run.stop).finally(unhook);
  }

  /**
   * Gives up on a URL, or on its whole mirror when the host failed (ofHost), for this part (for good, or until the
   * next round) and stops the run's other streams.
   */
  private fail(c: UrlCandidate, e: FetchError, run?: MirrorRun): void {
    this.problems.set(c.url, `${c.url}: ${e.message}`);
    const [excluded, key] = ofHost(e) ? [this.excludedMirrors, c.mirror] : [this.excludedUrls, c.url];
    // A mirror down by refused connections is tried again in a later round once it may be asked (untilAsked); one down
    // by timeouts (or no route, no name) is not: its probe is costly, and a reader gets its EIO at once.
    const costlyDown = e.kind === 'down' && this.ctx.board.msToQuickProbe(c.mirror) === undefined;
    if (e.permanent || costlyDown) excluded.set(key, 'permanent');
    else if (!excluded.has(key)) excluded.set(key, 'soft');
    if (e.permanent || e.kind === 'down') run?.abort.abort();
    // The mirror's other streams would trickle as slowly, each for a whole timeout: end them now.
    if (e.kind === 'slow') run?.abort.abort();
    if (run) run.stop = true;
  }

  /** One range from one mirror: requests until it is complete, resuming after cuts; stops the run on failure. */
  private async rangeFromMirror(run: MirrorRun, r: Range): Promise<void> {
    const { http, board } = this.ctx;
    const { c, wholeOnly } = run;
    const length = this.need.length;
    let requests = 0;
    while (!run.stop && r.pos < r.end) {
      const start = wholeOnly ? 0 : r.pos;
      let reached = start;
      let whole = wholeOnly;
      let started = false;
      let t0 = 0; // when the request is sent: not the wait for a turn or a slot, which is not the mirror's speed
      let turn: HostTurn | undefined;
      const end = wholeOnly ? length : r.end;
      // One request for the whole part: its bytes can be hashed as they arrive (any other request voids that hash),
      // unless they may go unhashed: decided when the request starts, after the wait for a slot, when the
      // mirror may have proved right meanwhile.
      let hash: ChecksumKind | undefined;
      this.digest = undefined;
      try {
        // A read waiting for the part goes before the parts fetched ahead (`whole`) at a host that takes few at once.
        turn = await this.ctx.hosts.turn(c.url, run.abort.signal, !this.whole);
        const res = await this.ctx.request(async () => {
          if (run.stop) throw new FetchError(c.url, 'aborted', 'aborted');
          // Before admit: a down mirror's probe that admit lets through must be sent (its outcome clears `probing`).
          turn!.send();
          const down = board.admit(c.mirror); // (it may have gone down while we waited for the slot)
          if (down) throw new FetchError(c.url, 'down', down);
          started = true;
          requests++;
          t0 = performance.now();
          hash = start === 0 && end === length && !this.unhashedFrom([c.mirror]) ? this.kind : undefined;
          board.requestStarted(c.mirror);
          return http.fetchRange(
            c.url,
            { start, end, total: length },
            this.writer.fh,
            (p) => {
              board.received(c.mirror, p - reached);
              reached = p;
              this.contributors.set(c.url, c.mirror);
              if (whole) this.ranges.advanceAll(p);
              r.pos = Math.max(r.pos, Math.min(r.end, p));
            },
            { signal: run.abort.signal, onHeaders: (h) => (whole ||= h.whole), hash },
          );
        });
        if (hash && res.digest && res.end === length) this.digest = res.digest;
        board.requestDone(c.mirror, res.end - start, performance.now() - t0, res.ttfbMs);
        if (start > 0) board.setAcceptsRanges(c.mirror, true);
        else if (res.whole && r.end < length) board.setAcceptsRanges(c.mirror, false);
      } catch (err) {
        if (err instanceof HostFull) continue; // (the slot is given back: a new turn, see HostTurn.send)
        const e = toFetchError(c.url, err);
        // Refused because another request (this part's own probe stream, or another part's) probes the down mirror: its
        // outcome decides, so this stream waits for it and asks again. Failing here aborted the run, the probe with it,
        // and the mirror never came back for a part fetched in several streams.
        if (!started && e.kind === 'down' && board.probing(c.mirror) && !run.abort.signal.aborted) {
          await this.probeSettled(c, run.abort.signal);
          continue;
        }
        // The host limits how many requests it takes from us (HostLimits): asked again with the next turn, not a failure.
        if (started && turn!.busy(e)) {
          board.requestFailed(c.mirror, 'aborted', e.message);
          requests--;
          continue;
        }
        if (!this.requestFailed(run, e, started)) return;
        // A cut after some progress resumes from where it stopped, a few times.
        // (Not after a trickle: the same mirror would be as slow again.)
        if (!e.permanent && e.kind !== 'slow' && reached > start && requests < MAX_REQUESTS_PER_RANGE) continue;
        this.fail(c, e, run);
        return;
      } finally {
        turn?.end();
      }
    }
  }

  /** Returns once no probe of the mirror is under way (its outcome is known), or once `signal` aborts. */
  private async probeSettled(c: UrlCandidate, signal: AbortSignal): Promise<void> {
    while (this.ctx.board.probing(c.mirror) && !signal.aborted) await sleep(PROBE_POLL_MS, signal);
  }

  /**
   * Books a failed request of `run` (on the board when it was sent); false when the range's stream ends
   * here without blaming the mirror: our disk failed, we aborted, or the mirror turned out to ignore Range.
   */
  private requestFailed(run: MirrorRun, e: FetchError, started: boolean): boolean {
    const { board } = this.ctx;
    const { c } = run;
    if (e.kind === 'local') {
      // Our disk, not the mirror: stop this part here (every mirror would fail the same way).
      if (started) board.requestFailed(c.mirror, 'aborted', e.message); // not held against the mirror
      this.localFailure ??= e;
      run.stop = true;
      run.abort.abort();
      return false;
    }
    if (started) board.requestFailed(c.mirror, e.kind === 'no-range' ? 'aborted' : e.kind, e.message);
    if (e.kind === 'aborted') return false;
    if (e.kind === 'no-range') {
      // The stream from byte 0 (another worker, or the next attempt) gets the whole file.
      board.setAcceptsRanges(c.mirror, false);
      return false;
    }
    return true;
  }
}
