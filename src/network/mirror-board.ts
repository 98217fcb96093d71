import { urlText } from '../format/byte-string.js';
import type { FailureKind } from './fetch-error.js';

/**
 * What we know about each mirror (a server base URL such as `http://deb.debian.org/debian/`): bytes,
 * speed, failures, and whether it is demoted or down. Demoted mirrors are tried after the others (never
 * skipped: when every mirror is demoted they are still tried, soonest-forgiven first). A mirror that is
 * down (it stalled or refused connections several times in a row, without an answer in between) is
 * skipped: each request would cost a whole timeout. After a while one probe request may try it again.
 * The numbers are kept for `jigdofs status` and are JSON-serializable through `snapshot()`.
 */

/** Consecutive failed requests after which a mirror is demoted. */
const FAILURES_TO_DEMOTE = 3;
/**
 * 404s in a row that demote a mirror that has not delivered anything yet (a wrong URL: every part would cost a round
 * trip there first). Once it has delivered, its 404s demote it no more (noteFailure).
 */
const NOT_FOUND_TO_DEMOTE = 16;
/** First failure demotion; it doubles with every further demotion in a row, up to the maximum. */
const FAILURE_DEMOTE_MS = 30_000;
const MAX_DEMOTE_MS = 10 * 60_000;
/** A mirror this many times slower than the best one (for a 1 MiB part) is demoted. */
const SLOW_FACTOR = 8;
const SLOW_DEMOTE_MS = 60_000;
/** Stalls and connect failures in a row (no answer in between) after which a mirror is down. */
const SILENT_TO_DOWN = 3;
/** A down mirror is skipped this long, then one probe request may try it; doubles while probes fail. */
const DOWN_MS = 15_000;
/** The same when every request that took it down was refused (a server restarting): a probe costs a round trip. */
const QUICK_DOWN_MS = 1000;
const MAX_DOWN_MS = 5 * 60_000;
/** Failures in which the mirror said nothing at all: each cost a whole timeout (or found no host). */
const SILENT: ReadonlySet<FailureKind> = new Set(['timeout', 'connect']);
/** Samples needed before a mirror's speed is compared. */
const MIN_SAMPLES = 3;
/** Weight of a new sample in the moving averages. */
const ALPHA = 0.3;
/** Until every mirror has MIN_SAMPLES samples, one part fetch in this many starts at an unmeasured one. */
const PROBE_EVERY = 8;
/** Bodies shorter than this say little about bandwidth (they are all latency). */
const MIN_SPEED_SAMPLE = 64 * 1024;
const REFERENCE_BYTES = 1 << 20;
/**
 * Parts a mirror must have sent right (each hashed and matching, none wrong) before a job that checks its whole
 * output takes its parts unhashed (make-image: ImageSession.deferChecks). A mirror that sends wrong bytes for
 * everything (a stale copy, a proxy's error page of the right size) is so caught part by part, as it always was.
 */
export const TRUST_AFTER_PARTS = 8;

export interface MirrorStats {
  /** The mirror's base URL (or origin). */
  mirror: string;
  requests: number;
  /** Requests running now. */
  active: number;
  /** Body bytes received (including from requests that failed later). */
  bytes: number;
  /** Moving average of the body transfer rate of single requests, bytes/s (0: not measured yet). */
  speed: number;
  /** Moving average of the time to response headers, ms. */
  latencyMs: number;
  failures: number;
  /** Failed requests since the last one that delivered, 404s not counted (a partial mirror is not failing). */
  consecutiveFailures: number;
  /** Failures by kind: not-found, status, timeout, reset, short, mismatch... */
  failuresByKind: Partial<Record<FailureKind, number>>;
  demotions: number;
  demoted: boolean;
  /** ISO time until which it is demoted, when it is. */
  demotedUntil?: string;
  demotedWhy?: string;
  lastError?: string;
  lastErrorAt?: string;
  /** Skipped: it has not answered SILENT_TO_DOWN requests in a row (see MirrorBoard.admit). */
  down: boolean;
  /** ISO time from which one probe request may try it again, when it is down. */
  downUntil?: string;
  downWhy?: string;
  /** Requests at once its host takes from us, learned from busy answers (HostLimits, via Network.stats). */ limit?: number;
}

export interface PartFetchStats {
  /** Parts fetched, verified and put in the cache by this process. */
  fetched: number;
  /** Part fetches running now (including those waiting for another process that fetches the same part). */
  inFlight: number;
  /** Part fetches that gave up (every candidate failed). */
  failed: number;
  /** Bytes of the parts fetched (what was needed). */
  bytes: number;
  /** Body bytes received from mirrors, including retried and wasted ones. */
  bytesDownloaded: number;
  /** Parts another process fetched while we waited for it, or an earlier run left whole before its commit. */
  fromOtherProcess: number;
  /** Fetches that failed their checksum. */
  mismatches: number;
  /** Parts fetched and cached unhashed, for the image checksum to check (make-image: verify once). */
  unhashed: number;
}

interface Mirror {
  stats: MirrorStats;
  demotedUntil: number;
  samples: number;
  bandwidth: number;
  /** Failure demotions since the last successful request: each one lasts twice as long. */
  demoteStreak: number;
  /** Learned from a 206 answer (true) or a 200 to a Range request (false). */
  ranges?: boolean;
  /** Stalls and connect failures since the mirror last answered anything. */
  silent: number;
  /** One of those was not a refused connection (a timeout, no route, no name: seconds each): a probe is not cheap. */
  silentCostly: boolean;
  /** Set while the mirror is down: skipped until `until`, then one request at a time probes it. */
  down?: { until: number; ms: number; why: string; probing: boolean; quick: boolean };
  /** 404s since it last delivered (see NOT_FOUND_TO_DEMOTE). */
  notFoundRun: number;
  /** Parts it sent that were hashed and matched (see TRUST_AFTER_PARTS). */
  rightParts: number;
  /** It sent wrong bytes at least once: never trusted again by this process. */
  lied: boolean;
}

export class MirrorBoard {
  private readonly mirrors = new Map<string, Mirror>();
  private fetches = 0;
  readonly parts: PartFetchStats = { fetched: 0, inFlight: 0, failed: 0, bytes: 0, bytesDownloaded: 0, fromOtherProcess: 0, mismatches: 0, unhashed: 0 };

  constructor(
    private readonly log: (line: string) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  private get(id: string): Mirror {
    let m = this.mirrors.get(id);
    if (!m) {
      m = {
        stats: {
          mirror: id, requests: 0, active: 0, bytes: 0, speed: 0, latencyMs: 0, failures: 0, consecutiveFailures: 0,
          failuresByKind: {}, demotions: 0, demoted: false, down: false,
        },
        demotedUntil: 0,
        samples: 0,
        bandwidth: 0,
        demoteStreak: 0,
        silent: 0,
        silentCostly: false,
        notFoundRun: 0,
        rightParts: 0,
        lied: false,
      };
      this.mirrors.set(id, m);
    }
    return m;
  }

  isDemoted(id: string): boolean {
    return (this.mirrors.get(id)?.demotedUntil ?? 0) > this.now();
  }

  /** Whether the mirror answers Range requests (undefined: not known yet). */
  acceptsRanges(id: string): boolean | undefined {
    return this.mirrors.get(id)?.ranges;
  }

  setAcceptsRanges(id: string, value: boolean): void {
    this.get(id).ranges = value;
  }

  /** `items` in their order, healthy mirrors first, then demoted ones by the end of their demotion. */
  order<T extends { mirror: string }>(items: T[]): T[] {
    const now = this.now();
    const until = (t: T): number => {
      const d = this.mirrors.get(t.mirror)?.demotedUntil ?? 0;
      return d > now ? d : 0;
    };
    return items
      .map((item, i) => ({ item, i, u: until(item) }))
      .sort((a, b) => a.u - b.u || a.i - b.i)
      .map((x) => x.item);
  }

  /**
   * Exploration: a slow first mirror can only be found out if the others are measured too. Every
   * PROBE_EVERY-th part fetch (the first included) names a healthy mirror among `ordered` (the ones as
   * preferred as the first) that has too few samples yet, to be tried first; undefined otherwise.
   * Mirrors the user named (`user`: --mirror, config) are never second-guessed: no probe when one of
   * them comes first, and they are not probed either. Nor is another URL on the first one's mirror (a part listed
   * under several paths there): that measures nothing new.
   */
  probe<T extends { mirror: string; weight: number; user: boolean }>(ordered: T[]): T | undefined {
    if (ordered.length < 2 || ordered[0]!.user || this.fetches++ % PROBE_EVERY !== 0) return undefined;
    const top = ordered[0]!.weight;
    return ordered.find(
      (c, i) => i > 0 && !c.user && c.weight === top && c.mirror !== ordered[0]!.mirror && !this.isDemoted(c.mirror) && (this.mirrors.get(c.mirror)?.samples ?? 0) < MIN_SAMPLES,
    );
  }

  /**
   * Why a request to the mirror is not worth making now (it is down, and no probe is due), or undefined.
   * Asks only: `admit` is what a request calls right before it starts.
   */
  refusal(id: string): string | undefined {
    const d = this.mirrors.get(id)?.down;
    if (!d || (!d.probing && this.now() >= d.until)) return undefined;
    return `mirror ${id} is not answering: ${d.why}`;
  }

  /** For a mirror down by refused connections alone (a probe costs a round trip): ms until its probe (0: now, or under way). */
  msToQuickProbe(id: string): number | undefined {
    const d = this.mirrors.get(id)?.down;
    return d?.quick ? Math.max(0, d.until - this.now()) : undefined;
  }

  /** A down mirror's probe request is under way: its outcome says whether the mirror is back. */
  probing(id: string): boolean {
    return this.mirrors.get(id)?.down?.probing === true;
  }

  /**
   * Right before a request to the mirror: undefined to go ahead, or why it is skipped (`refusal`). When a
   * down mirror's time is up, one request at a time is let through as a probe: its outcome decides.
   */
  admit(id: string): string | undefined {
    const why = this.refusal(id);
    const d = this.mirrors.get(id)?.down;
    if (why === undefined && d) d.probing = true;
    return why;
  }

  requestStarted(id: string): void {
    const m = this.get(id);
    m.stats.requests++;
    m.stats.active++;
  }

  /** Body bytes as they arrive (counted whether or not the request ends well). */
  received(id: string, bytes: number): void {
    this.get(id).stats.bytes += bytes;
    this.parts.bytesDownloaded += bytes;
  }

  /** A request that delivered what was asked: `bytes` of body in `ms`, headers after `ttfbMs`. */
  requestDone(id: string, bytes: number, ms: number, ttfbMs: number): void {
    const m = this.get(id);
    m.stats.active--;
    m.stats.consecutiveFailures = 0;
    m.notFoundRun = 0;
    m.demoteStreak = 0;
    this.answered(id, m);
    m.stats.latencyMs = m.samples === 0 ? ttfbMs : (1 - ALPHA) * m.stats.latencyMs + ALPHA * ttfbMs;
    if (bytes >= MIN_SPEED_SAMPLE) {
      const bw = bytes / (Math.max(1, ms - ttfbMs) / 1000);
      m.bandwidth = m.bandwidth === 0 ? bw : (1 - ALPHA) * m.bandwidth + ALPHA * bw;
      m.stats.speed = Math.round(m.bandwidth);
    }
    m.samples++;
    this.checkSlow(id, m);
  }

  /** A request that failed. */
  requestFailed(id: string, kind: FailureKind, message: string): void {
    const m = this.get(id);
    m.stats.active--;
    if (kind === 'aborted') {
      if (m.down) m.down.probing = false; // a probe we cut tells nothing: the next request probes
      return;
    }
    this.noteFailure(id, m, kind, message);
    if (SILENT.has(kind)) this.noteSilent(id, m, message, kind === 'timeout' || !message.includes('ECONNREFUSED'));
    else this.answered(id, m);
  }

  /** A stall or connect failure: the SILENT_TO_DOWN-th in a row takes the mirror down; a failed probe, longer. */
  private noteSilent(id: string, m: Mirror, message: string, costly: boolean): void {
    m.silent++;
    m.silentCostly ||= costly;
    if (m.silent < SILENT_TO_DOWN) return;
    const why = `${m.silent} failures in a row, last: ${message}`;
    const d = m.down;
    if (d && !d.probing) {
      d.why = why; // a request that started before it went down
      return;
    }
    const base = m.silentCostly ? DOWN_MS : QUICK_DOWN_MS;
    const ms = d ? Math.min(MAX_DOWN_MS, Math.max(base, d.ms * 2)) : base; // (a costly probe of a quick one: the slow base)
    m.down = { until: this.now() + ms, ms, why, probing: false, quick: !m.silentCostly };
    this.log(`mirror ${id} is not answering (${why}): skipped for ${Math.round(ms / 1000)} s`);
  }

  /** The mirror answered (well or not): it is up. */
  private answered(id: string, m: Mirror): void {
    m.silent = 0;
    m.silentCostly = false;
    if (!m.down) return;
    m.down = undefined;
    this.log(`mirror ${id} answers again`);
  }

  /** A part with bytes from this mirror was hashed and matched. */
  partRight(id: string): void {
    this.get(id).rightParts++;
  }

  /** Whether a job that checks its whole output may take this mirror's parts unhashed (TRUST_AFTER_PARTS). */
  trusted(id: string): boolean {
    const m = this.mirrors.get(id);
    return m !== undefined && !m.lied && m.rightParts >= TRUST_AFTER_PARTS;
  }

  /** Bytes that failed their checksum: a mirror serving wrong data counts as failing. */
  mismatch(id: string, message: string): void {
    this.parts.mismatches++;
    const m = this.get(id);
    m.lied = true;
    this.noteFailure(id, m, 'mismatch', message);
    this.answered(id, m);
  }

  private noteFailure(id: string, m: Mirror, kind: FailureKind, message: string): void {
    m.stats.failures++;
    m.stats.failuresByKind[kind] = (m.stats.failuresByKind[kind] ?? 0) + 1;
    m.stats.lastError = message;
    m.stats.lastErrorAt = new Date(this.now()).toISOString();
    if (kind === 'not-found') {
      // A mirror that lacks a file is partial, not failing: a local mirror of part of the archive, given first, was
      // demoted by 3 404s in a row, and the parts it has went elsewhere. Only a long run of them before it delivered
      // anything (`samples`: requests done) looks like a wrong URL.
      // Demoted again by the next 404 once a demotion is over, each time twice as long (as other failures).
      if (++m.notFoundRun >= NOT_FOUND_TO_DEMOTE && m.samples === 0) this.demoteFailing(id, m, `${m.notFoundRun} files in a row not found and none found (last: ${message})`);
      return;
    }
    m.stats.consecutiveFailures++;
    if (m.stats.consecutiveFailures >= FAILURES_TO_DEMOTE) this.demoteFailing(id, m, `${m.stats.consecutiveFailures} failures in a row (last: ${message})`);
  }

  /** A failure demotion, unless one is under way: FAILURE_DEMOTE_MS, doubling with each in a row (demoteStreak). */
  private demoteFailing(id: string, m: Mirror, why: string): void {
    if (this.isDemoted(id)) return;
    this.demote(id, m, Math.min(MAX_DEMOTE_MS, FAILURE_DEMOTE_MS * 2 ** Math.min(10, m.demoteStreak++)), why);
  }

  /** Expected cost of fetching 1 MiB from a mirror, ms (latency + transfer); undefined until measured. */
  private cost(m: Mirror): number | undefined {
    if (m.samples < MIN_SAMPLES || m.bandwidth === 0) return undefined;
    return m.stats.latencyMs + (REFERENCE_BYTES / m.bandwidth) * 1000;
  }

  private checkSlow(id: string, m: Mirror): void {
    const mine = this.cost(m);
    if (mine === undefined || this.isDemoted(id)) return;
    let best = Infinity;
    for (const [otherId, other] of this.mirrors) {
      if (otherId === id || this.isDemoted(otherId)) continue;
      const c = this.cost(other);
      if (c !== undefined) best = Math.min(best, c);
    }
    if (best !== Infinity && mine > SLOW_FACTOR * best) {
      this.demote(id, m, SLOW_DEMOTE_MS, `slow: ${Math.round(mine)} ms per MiB, the best mirror needs ${Math.round(best)} ms`);
    }
  }

  private demote(id: string, m: Mirror, ms: number, why: string): void {
    m.demotedUntil = this.now() + ms;
    m.stats.demotions++;
    m.stats.demotedWhy = why;
    this.log(`mirror ${id} demoted for ${Math.round(ms / 1000)} s: ${why}`);
  }

  snapshot(): { mirrors: MirrorStats[]; parts: PartFetchStats } {
    const now = this.now();
    const mirrors = [...this.mirrors.values()].map((m) => {
      const demoted = m.demotedUntil > now;
      const s: MirrorStats = { ...m.stats, failuresByKind: { ...m.stats.failuresByKind }, demoted, down: m.down !== undefined };
      if (demoted) s.demotedUntil = new Date(m.demotedUntil).toISOString();
      else delete s.demotedWhy;
      if (m.down) {
        s.downUntil = new Date(m.down.until).toISOString();
        s.downWhy = m.down.why;
      }
      return s;
    });
    return { mirrors, parts: { ...this.parts } };
  }
}

/**
 * The mirror a candidate URL belongs to: the URL minus the part's own path when the candidate came from
 * a `Label:path` expansion (so `http://host/debian/` for `Debian:pool/...`), else the URL's origin.
 */
export function mirrorOf(url: string, rest?: string): string {
  const tail = rest === undefined ? undefined : urlText(rest); // as the URL has it (byte-string.ts)
  if (tail && url.endsWith(tail) && url.length > tail.length) return url.slice(0, url.length - tail.length);
  try {
    return `${new URL(url).origin}/`;
  } catch {
    return url;
  }
}
