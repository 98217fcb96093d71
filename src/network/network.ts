import { createHash } from 'node:crypto';
import { rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { ChecksumKind } from '../format/checksum.js';
import { hexOfKey } from '../format/checksum.js';
import { JigdoError } from '../format/errors.js';
import type { JigdoFile, JigdoImage, JigdoValue } from '../format/jigdo.js';
import { describeLocation, type Location } from '../format/location.js';
import { LabelMap, partCandidates } from '../format/resolve.js';
import type { ImageLayout, PartNeed } from '../image/layout.js';
import { FetchError, HttpClient, toFetchError, type BodyRules } from './http-client.js';
import type { SumCheck, VerifiedCopy } from '../sources/verified-copy.js';
import { MirrorBoard, mirrorOf, type MirrorStats, type PartFetchStats } from './mirror-board.js';
import { PartCache, type CacheStats } from '../cache/part-cache.js';
import type { CacheWriter } from '../cache/cache-writer.js';
import type { PartProvider } from '../sources/part-store.js';
import { makeDirs } from '../util/make-dirs.js';

/**
 * Parts from the network. A part's candidate URLs (spec §5.5, `--mirror` ones first) are tried in order,
 * healthy mirrors before demoted ones. The bytes go to a temporary file of the disk cache; only after
 * their checksum matched are they renamed into the cache and served. Big parts are fetched as parallel
 * ranges, and a cut range resumes where it stopped. A mirror answering 404/5xx, cutting, stalling,
 * sending a short body or wrong bytes is left for the next one; after every candidate failed, a few more
 * rounds with backoff; then the part is unavailable (the read gets EIO, one log line names the part).
 */

export interface NetworkOptions {
  /** Never touch the network (the disk cache is still used). */
  offline: boolean;
  /** `--mirror LABEL=URL`: tried before the .jigdo's own [Servers] entries for LABEL, in this order. */
  mirrors: Map<string, string[]>;
  cacheDir: string;
  /** `--cache-size` in bytes; undefined: the default (capped by free disk space). */
  cacheSize?: number;
  /** Connect, headers and body-idle timeout, ms. */
  timeoutMs: number;
  /** Concurrent HTTP requests (in all). */
  connections: number;
  /** Extra rounds over all candidates after each of them failed. */
  retries: number;
  /** Parts larger than this are fetched as parallel ranges of about this size. */
  rangeSize: number;
  /** Parallel range requests per part. */
  streamsPerPart: number;
  log: (line: string) => void;
  /** Hashes a cache file before it is committed: the command's worker pool; absent: the cache's default. */
  hashFile: (file: string, kind: ChecksumKind) => Promise<Buffer>;
}

export const NETWORK_DEFAULTS = {
  timeoutMs: 30_000,
  connections: 8,
  retries: 2,
  rangeSize: 4 << 20,
  streamsPerPart: 4,
} as const;

/** What `jigdofs status` shows about the network: JSON-serializable. */
export interface NetworkStats {
  offline: boolean;
  mirrors: MirrorStats[];
  parts: PartFetchStats;
  cache: CacheStats;
  templates: { fetched: number; fromCache: number };
}

/** Most attempts on one range from one mirror (the first request plus resumes after cuts). */
const MAX_REQUESTS_PER_RANGE = 4;
const MAX_JIGDO_BYTES = 64 << 20;
/** How every template starts (the check of parseHeader in format/template.ts): anything else is refused at once. */
const TEMPLATE_MAGIC = Buffer.from('JigsawDownload template ');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const backoff = (round: number): number => 500 * 3 ** (round - 1) * (0.75 + Math.random() / 2);

/** A FIFO counting semaphore. */
class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(n: number) {
    this.free = Math.max(1, n);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

let current: Network | undefined;

/** The network numbers of this process (its most recently created Network), for `jigdofs status`. */
export function networkStats(): NetworkStats | undefined {
  return current?.stats();
}

interface UrlCandidate {
  url: string;
  mirror: string;
  weight: number;
  /** From --mirror or the configuration file. */
  user: boolean;
}

/** The process's network: HTTP client, mirror board, disk cache; gives the part providers and hooks. */
export class Network {
  readonly board: MirrorBoard;
  readonly cache: PartCache;
  readonly http: HttpClient | undefined;
  private readonly slots: Slots;
  private readonly templateStats = { fetched: 0, fromCache: 0 };

  constructor(readonly opts: NetworkOptions) {
    this.board = new MirrorBoard(opts.log);
    this.cache = new PartCache({ dir: opts.cacheDir, maxBytes: opts.cacheSize, log: opts.log, hashFile: opts.hashFile });
    this.http = opts.offline ? undefined : new HttpClient({ timeoutMs: opts.timeoutMs, connections: opts.connections });
    this.slots = new Slots(opts.connections);
    current = this;
  }

  /** `--mirror` values as extra [Servers] lines (spec §5.1: inserted before the file's own). */
  extraServers(base: Location): Map<string, JigdoValue[]> {
    return new Map([...this.opts.mirrors].map(([label, urls]) => [label, urls.map((uri) => ({ uri, weight: 0, base }))]));
  }

  /** The providers to put after local copies: the disk cache, then (unless offline) the mirrors. */
  providers(ctx: { jigdo: JigdoFile; layout: ImageLayout }, fetchParts = true): PartProvider[] {
    const kind = ctx.layout.checksumKind;
    const cache: PartProvider = {
      name: 'cache',
      find: async (key) => {
        const need = ctx.layout.parts.get(key);
        if (!need) return undefined;
        const copy = await this.cache.lookupPart(kind, key, need.length);
        // Offline, the cache is the last place looked: say so, or "missing" would read as "no mirror has it".
        if (!copy && !this.http) throw new Error('not in the cache, and --offline keeps the mirrors out');
        return copy;
      },
    };
    if (!this.http || !fetchParts) return [cache];
    const labels = new LabelMap(ctx.jigdo.servers, this.extraServers(ctx.jigdo.location));
    const remote = new RemoteParts(this, ctx.jigdo, ctx.layout, labels, new Set([...this.opts.mirrors.values()].flat()));
    return [cache, remote];
  }

  /** One HTTP request slot. */
  request<T>(fn: () => Promise<T>): Promise<T> {
    return this.slots.run(fn);
  }

  /** Reads a whole remote .jigdo or [Include] (the `setRemoteLoader` hook), with retries. */
  async loadRemote(url: string): Promise<Buffer> {
    const http = this.http;
    if (!http) throw new JigdoError(url, 'cannot fetch URLs with --offline');
    let last: FetchError | undefined;
    for (let attempt = 0; attempt <= this.opts.retries; attempt++) {
      if (attempt > 0) await sleep(backoff(attempt));
      try {
        return await this.request(() => http.fetchBuffer(url, MAX_JIGDO_BYTES));
      } catch (err) {
        last = toFetchError(url, err);
        if (last.permanent) break;
      }
    }
    throw new JigdoError(url, `cannot fetch: ${last?.message ?? 'unknown error'}`);
  }

  /**
   * The `fetchTemplate` hook: the template from the cache (named by its Template-*Sum), else downloaded,
   * verified against Template-SHA256Sum / Template-MD5Sum and cached.
   */
  async fetchTemplate(loc: Location, image: JigdoImage): Promise<string> {
    const where = describeLocation(loc);
    if (loc.kind === 'file') return loc.path;
    const sums: SumCheck[] = [];
    if (image.templateSha256) sums.push(['sha256', image.templateSha256]);
    if (image.templateMd5) sums.push(['md5', image.templateMd5]);
    if (sums.length === 0) return this.fetchUnverifiedTemplate(loc.url);
    const [kind, sum] = sums[0]!;
    const hex = sum.toString('hex');
    if (!this.http) {
      const cached = await this.cache.lookup('templates', kind, hex);
      if (cached) return cached.path;
      throw new JigdoError(where, 'template is not in the cache and --offline is set (use --template FILE)');
    }
    const started = await this.cache.begin('templates', kind, hex);
    if ('copy' in started) {
      this.templateStats.fromCache++;
      return started.copy.path;
    }
    const writer = started.writer;
    try {
      await this.download(loc.url, writer.fh, await this.templateRules());
      const copy = await writer.commit(sums);
      if (!copy) throw new JigdoError(where, `downloaded template does not match the .jigdo's Template-${kind === 'md5' ? 'MD5' : 'SHA256'}Sum: wrong or corrupt template`);
      this.templateStats.fetched++;
      return copy.path;
    } finally {
      await writer.abort();
    }
  }

  /** A template the .jigdo gives no checksum for: downloaded anew each time (nothing to check it against). */
  private async fetchUnverifiedTemplate(url: string): Promise<string> {
    if (!this.http) throw new JigdoError(url, 'template is remote and --offline is set (use --template FILE)');
    const dir = path.join(this.cache.dir, 'templates', 'unverified');
    await makeDirs(dir);
    const final = path.join(dir, `${createHash('sha256').update(url).digest('hex').slice(0, 32)}.template`);
    const rules = await this.templateRules();
    const { file: tmp, fh } = await this.cache.tempFile();
    try {
      await this.download(url, fh, rules);
      await fh.close();
      await rename(tmp, final);
      this.templateStats.fetched++;
      return final;
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  /**
   * A template's size is not known before it is downloaded, but it goes into the cache: it may not be larger
   * than the cache may hold, and it must start as a template does (a server sending something else, however
   * long, is refused after its first bytes).
   */
  private async templateRules(): Promise<BodyRules> {
    const limit = (await this.cache.refreshStats()).limit;
    const shown = limit >= 1 << 20 ? `${(limit / (1 << 20)).toFixed(1)} MiB` : `${limit} bytes`;
    return { maxBytes: limit, maxWhy: `the cache's limit of ${shown} (--cache-size, capped by free disk space)`, magic: TEMPLATE_MAGIC, magicWhat: 'a jigdo template' };
  }

  /**
   * Downloads a whole file of unknown size into `fh`, resuming after cuts, with bounded retries; what
   * breaks `rules` fails at once (the caller removes what was written).
   */
  private async download(url: string, fh: FileHandle, rules: BodyRules): Promise<void> {
    const http = this.http!;
    const mirror = mirrorOf(url);
    let pos = 0;
    let total: number | undefined;
    let failures = 0;
    /** The furthest any attempt got: an attempt that does not pass it counts as a failure. */
    let best = 0;
    /** The server ignores Range: every attempt starts from byte 0. */
    let fromZero = false;
    for (;;) {
      if (fromZero) pos = 0;
      const before = pos;
      let t0 = 0;
      try {
        const r = await this.request(() => {
          t0 = performance.now();
          this.board.requestStarted(mirror);
          return http.fetchRange(url, { start: pos, total }, fh, (p) => {
            this.board.received(mirror, p - pos);
            pos = p;
          }, { onHeaders: (h) => (total ??= h.total), rules });
        });
        this.board.requestDone(mirror, r.end - before, performance.now() - t0, r.ttfbMs);
        await fh.truncate(r.end);
        return;
      } catch (err) {
        const e = toFetchError(url, err);
        if (e.kind === 'local') {
          this.board.requestFailed(mirror, 'aborted', e.message); // ends the request; not held against the mirror
          throw new JigdoError(this.cache.dir, e.message);
        }
        this.board.requestFailed(mirror, e.kind, e.message);
        if (e.kind === 'refused') throw new JigdoError(url, e.message);
        if (e.kind === 'no-range') fromZero = true;
        else if (e.permanent) throw new JigdoError(url, `cannot fetch: ${e.message}`);
        // Progress is measured against the best attempt so far: a server that ignores Range and cuts
        // every download at the same point must not make us restart from byte 0 forever.
        // A trickle moves forward too, but a slow server stays slow: it counts as a failure.
        const progressed = pos > best && e.kind !== 'slow';
        if (progressed) best = pos;
        else failures++;
        if (failures > this.opts.retries) throw new JigdoError(url, `cannot fetch: ${e.message}`);
        if (!progressed) await sleep(backoff(failures));
      }
    }
  }

  stats(): NetworkStats {
    return { offline: !this.http, ...this.board.snapshot(), cache: this.cache.stats(), templates: { ...this.templateStats } };
  }

  /** The same, with the cache counted if it was not yet (a directory walk). */
  async fullStats(): Promise<NetworkStats> {
    await this.cache.refreshStats();
    return this.stats();
  }

  /** Ends network use; the cache is brought under its limit now that no part is in use. */
  /** Ends network use: fetches still running (prefetches of a mount going away) are cut, not waited for. */
  async close(): Promise<void> {
    if (current === this) current = undefined;
    await this.http?.close();
    await this.cache.trim().catch((err: unknown) => this.opts.log(`cache: ${String(err)}`));
  }
}

/** The mirrors as a PartProvider: one verified download per part into the cache. */
export class RemoteParts implements PartProvider {
  readonly name = 'mirrors';

  constructor(
    private readonly net: Network,
    private readonly jigdo: JigdoFile,
    private readonly layout: ImageLayout,
    private readonly labels: LabelMap,
    private readonly userMirrors: Set<string> = new Set(),
  ) {}

  /** The part's http(s) candidates in spec order, and what could not be used. */
  candidates(key: string): { urls: UrlCandidate[]; unresolved: string[] } {
    const urls: UrlCandidate[] = [];
    const unresolved: string[] = [];
    for (const c of partCandidates(this.jigdo, this.labels, key)) {
      if (c.kind === 'url' && /^https?:\/\//i.test(c.url)) {
        const mirror = mirrorOf(c.url, c.rest);
        urls.push({ url: c.url, mirror, weight: c.weight, user: this.userMirrors.has(mirror) });
      } else if (c.kind === 'unresolved') unresolved.push(c.text);
    }
    return { urls, unresolved };
  }

  async find(key: string): Promise<VerifiedCopy | undefined> {
    const need = this.layout.parts.get(key);
    if (!need) return undefined;
    const { urls, unresolved } = this.candidates(key);
    if (urls.length === 0) {
      if (unresolved.length > 0) throw new Error(`no URL to fetch it from (${unresolved.slice(0, 3).join(', ')}: label not defined)`);
      return undefined;
    }
    const board = this.net.board;
    const kind = this.layout.checksumKind;
    board.parts.inFlight++;
    try {
      let waited = false;
      const started = await this.net.cache.begin('parts', kind, hexOfKey(key), () => (waited = true));
      if ('copy' in started) {
        if (waited) board.parts.fromOtherProcess++;
        return started.copy;
      }
      try {
        const copy = await new PartFetch(this.net, need, kind, urls, started.writer).run();
        board.parts.fetched++;
        board.parts.bytes += need.length;
        return copy;
      } catch (err) {
        board.parts.failed++;
        throw err;
      } finally {
        await started.writer.abort();
      }
    } finally {
      board.parts.inFlight--;
    }
  }
}

interface Range {
  start: number;
  end: number;
  /** Bytes [start, pos) are written. */
  pos: number;
}

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

/** One part's download: ranges, mirrors in turn, verification. */
class PartFetch {
  private readonly ranges: Range[];
  /** Mirrors given up on for this part: 'permanent' (404, wrong bytes) or 'soft' (may work in a later round). */
  private readonly excluded = new Map<string, 'permanent' | 'soft'>();
  private readonly problems = new Map<string, string>();
  /** Mirrors whose bytes are in the current attempt. */
  private readonly contributors = new Set<string>();
  /** After a checksum mismatch with bytes from several mirrors: every attempt uses one mirror only. */
  private single = false;
  /** Writing into the cache failed (a full disk): the part cannot be had through this cache. */
  private localFailure: FetchError | undefined;

  constructor(
    private readonly net: Network,
    private readonly need: PartNeed,
    private readonly kind: ChecksumKind,
    private readonly urls: UrlCandidate[],
    private readonly writer: CacheWriter,
  ) {
    const { rangeSize, streamsPerPart } = net.opts;
    const length = need.length;
    const count = length > rangeSize && streamsPerPart > 1 ? Math.ceil(length / rangeSize) : 1;
    const size = Math.ceil(length / count);
    this.ranges = Array.from({ length: count }, (_, i) => ({ start: i * size, end: Math.min(length, (i + 1) * size), pos: i * size }));
  }

  private complete(): boolean {
    return this.ranges.every((r) => r.pos >= r.end);
  }

  private restart(): void {
    for (const r of this.ranges) r.pos = r.start;
    this.contributors.clear();
  }

  async run(): Promise<VerifiedCopy> {
    const { board } = this.net;
    await this.writer.allocate(this.need.length);
    let probe = board.probe(board.order(this.urls));
    for (let round = 0; round <= this.net.opts.retries; round++) {
      if (round > 0) {
        let again = false;
        for (const [m, why] of this.excluded) {
          if (why === 'soft') {
            this.excluded.delete(m);
            again = true;
          }
        }
        if (!again) break;
        await sleep(backoff(round));
      }
      for (;;) {
        const next = probe ?? board.order(this.urls).find((c) => !this.excluded.has(c.mirror));
        probe = undefined;
        if (!next) break;
        if (this.single) this.restart();
        await this.fromMirror(next);
        if (this.localFailure) throw new JigdoError(this.net.cache.dir, `part ${this.need.key}: ${this.localFailure.message}`);
        if (!this.complete()) {
          if (!this.excluded.has(next.mirror)) this.excluded.set(next.mirror, 'soft'); // never loop on one mirror
          continue;
        }
        const copy = await this.writer.commit([[this.kind, this.need.sum]]);
        if (copy) return copy;
        const message = `wrong bytes for part ${this.need.key} (checksum mismatch)`;
        // One mirror's bytes only (always so in single mode; none at all for an empty part): it is wrong.
        if (this.single || this.contributors.size <= 1) {
          board.mismatch(next.mirror, message);
          this.excluded.set(next.mirror, 'permanent');
          this.problems.set(next.mirror, `${next.url}: wrong bytes (checksum mismatch)`);
          this.net.opts.log(`mirror ${next.mirror} served ${message}; trying the next one`);
        } else {
          this.single = true; // several mirrors contributed: find out which one is wrong
        }
        this.restart();
      }
    }
    const list = [...this.problems.values()];
    const shown = list.slice(0, 4).join('; ') + (list.length > 4 ? `; and ${list.length - 4} more` : '');
    throw new Error(`every mirror failed: ${shown || 'no mirror could be tried'}`);
  }

  /** Fetches what is missing from one mirror, with parallel ranges; excludes the mirror if it fails. */
  private async fromMirror(c: UrlCandidate): Promise<void> {
    const { board } = this.net;
    // A mirror that is down costs this part nothing: not even the wait for a request slot.
    const down = board.refusal(c.mirror);
    if (down) return this.fail(c, new FetchError(c.url, 'down', down));
    const length = this.need.length;
    // A server known to ignore Range gets one stream for the whole part (restarted from 0 after a cut).
    const wholeOnly = board.acceptsRanges(c.mirror) === false;
    const run: MirrorRun = { c, abort: new AbortController(), stop: false, wholeOnly };
    const pending: Range[] = wholeOnly ? [{ start: 0, end: length, pos: 0 }] : this.ranges.filter((r) => r.pos < r.end);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!run.stop && next < pending.length) await this.rangeFromMirror(run, pending[next++]!);
    };
    const streams = Math.min(this.net.opts.streamsPerPart, pending.length);
    await Promise.all(Array.from({ length: streams }, worker));
  }

  /** Gives up on a mirror for this part (for good, or until the next round) and stops its other streams. */
  private fail(c: UrlCandidate, e: FetchError, run?: MirrorRun): void {
    this.problems.set(c.mirror, `${c.url}: ${e.message}`);
    // A mirror that is down is not tried again for this part: it stays down longer than a round's backoff.
    if (e.permanent || e.kind === 'down') {
      this.excluded.set(c.mirror, 'permanent');
      run?.abort.abort();
    } else if (!this.excluded.has(c.mirror)) this.excluded.set(c.mirror, 'soft');
    // The mirror's other streams would trickle as slowly, each for a whole timeout: end them now.
    if (e.kind === 'slow') run?.abort.abort();
    if (run) run.stop = true;
  }

  /** One range from one mirror: requests until it is complete, resuming after cuts; stops the run on failure. */
  private async rangeFromMirror(run: MirrorRun, r: Range): Promise<void> {
    const http = this.net.http!;
    const { board } = this.net;
    const { c, wholeOnly } = run;
    const length = this.need.length;
    let requests = 0;
    while (!run.stop && r.pos < r.end) {
      const start = wholeOnly ? 0 : r.pos;
      let reached = start;
      let whole = wholeOnly;
      let started = false;
      const t0 = performance.now();
      try {
        const res = await this.net.request(async () => {
          if (run.stop) throw new FetchError(c.url, 'aborted', 'aborted');
          const down = board.admit(c.mirror); // (it may have gone down while we waited for the slot)
          if (down) throw new FetchError(c.url, 'down', down);
          started = true;
          requests++;
          board.requestStarted(c.mirror);
          return http.fetchRange(
            c.url,
            { start, end: wholeOnly ? length : r.end, total: length },
            this.writer.fh,
            (p) => {
              board.received(c.mirror, p - reached);
              reached = p;
              this.contributors.add(c.mirror);
              if (whole) this.advanceAll(p);
              r.pos = Math.max(r.pos, Math.min(r.end, p));
            },
            { signal: run.abort.signal, onHeaders: (h) => (whole ||= h.whole) },
          );
        });
        board.requestDone(c.mirror, res.end - start, performance.now() - t0, res.ttfbMs);
        if (start > 0) board.setAcceptsRanges(c.mirror, true);
        else if (res.whole && r.end < length) board.setAcceptsRanges(c.mirror, false);
      } catch (err) {
        const e = toFetchError(c.url, err);
        if (e.kind === 'local') {
          // Our disk, not the mirror: stop this part here (every mirror would fail the same way).
          if (started) board.requestFailed(c.mirror, 'aborted', e.message); // not held against the mirror
          this.localFailure ??= e;
          run.stop = true;
          run.abort.abort();
          return;
        }
        if (started) board.requestFailed(c.mirror, e.kind === 'no-range' ? 'aborted' : e.kind, e.message);
        if (e.kind === 'aborted') return;
        if (e.kind === 'no-range') {
          // The stream from byte 0 (another worker, or the next attempt) gets the whole file.
          board.setAcceptsRanges(c.mirror, false);
          return;
        }
        // A cut after some progress resumes from where it stopped, a few times.
        // (Not after a trickle: the same mirror would be as slow again.)
        if (!e.permanent && e.kind !== 'slow' && reached > start && requests < MAX_REQUESTS_PER_RANGE) continue;
        this.fail(c, e, run);
        return;
      }
    }
  }

  /** A whole-file stream from byte 0 has written [0, pos): every range it covers is that far. */
  private advanceAll(pos: number): void {
    for (const x of this.ranges) if (x.start < pos) x.pos = Math.max(x.pos, Math.min(x.end, pos));
  }
}

