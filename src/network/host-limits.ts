import { sleep } from './backoff.js';
import { FetchError } from './fetch-error.js';

/** A Retry-After holds new requests to its host at most this long: a mount's reader waits behind it. */
const MAX_PAUSE_MS = 30_000;
/** A host's limit grows by one after this long without a busy answer (a limit that was load, not policy, fades). */
const RAISE_MS = 30_000;
/** URLs a host's busy answers are remembered for (Host.busyUrls), at most. */
const MAX_BUSY_URLS = 1024;
/**
 * Busy answers to one URL taken for the host's limit: a part's parallel ranges (4 by default) are one URL, and at a
 * limit of 2 two of them are refused at once. One more is the URL's own failure.
 */
const MAX_BUSY_PER_URL = 4;

interface Host {
  /** Turns taken (requests waiting for a request slot, or sent). */
  taken: number;
  /** Of those, requests sent (inside a request slot). */
  sending: number;
  /** Most turns at once; Infinity until the host answered busy. */
  limit: number;
  /** No new turn before this time (a Retry-After). */
  pausedUntil: number;
  /** When the limit was last lowered or raised. */
  changedAt: number;
  /** Callers queued for a turn, first come first served; `urgent` ones go before all of `waiting` (HostLimits.turn). */
  waiting: Array<() => void>;
  urgent: Array<() => void>;
  /** Busy answers by URL since the limit last grew: past MAX_BUSY_PER_URL, one more is that URL's failure (busy). */
  busyUrls: Map<string, number>;
  /**
   * Pauses by URL that busy answers with nothing else of ours running asked for: MAX_BUSY_PER_URL at most. Apart from
   * busyUrls, which these would fill for good while no limit is learned (it is cleared only as a limit grows).
   */
  pausedUrls: Map<string, number>;
}

/**
 * Thrown by HostTurn.send when the host's limit fell while the turn waited for a request slot: the caller gives the
 * slot back and waits for a new turn.
 */
export class HostFull extends Error {
  override name = 'HostFull';
}

/** One request's turn at its host: `send` right before the request goes out, `busy` when it was answered busy, `end` once. */
export interface HostTurn {
  /** Counts the request as sent; throws HostFull when the host has as many running as its limit now says. */
  send(): void;
  /** Whether `e` is the host's per-client limit (see HostLimits): then the request is asked again with a new turn. */
  busy(e: FetchError): boolean;
  end(): void;
}

/**
 * How many requests each mirror host takes from us at once. Unlimited (the process's --connections) until it answers
 * 503 or 429 while other requests of ours to it run: a per-client limit (nginx `limit_conn`, a mirror's fair-use rule).
 * Its limit then becomes the number it was serving, and the request it refused waits for a turn and is asked again,
 * not held against the mirror. Without this every request over the limit failed, and after a few rounds the parts
 * with them: make-image against nginx `limit_conn 2` with the default 8 connections ended with 50-66 parts missing.
 * A busy answer with no other request of ours running is the server's state, not a limit on us: the caller's rounds
 * retry it as before. A Retry-After, with either, holds the host's new requests until then (at most MAX_PAUSE_MS). RAISE_MS after
 * the last change without a busy answer, the limit grows by one.
 *
 * By origin (scheme, host, port): a limit is per client address, whatever path or label the URLs have.
 * Owns each host's counts, limit, pause and queue. The turn is taken before a request slot (Network's `--connections`),
 * so a request waiting for a busy host holds no slot another host's request could use.
 */
export class HostLimits {
  private readonly hosts = new Map<string, Host>();

  constructor(
    private readonly log: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** The limit learned for the host of `url`, if it has one. */
  limitOf(url: string): number | undefined {
    const h = this.hosts.get(originOf(url));
    return h && h.limit !== Infinity ? h.limit : undefined;
  }

  /**
   * Waits for a turn at the host of `url`; an 'aborted' FetchError once `signal` aborts. `urgent` (a read waits for the
   * part): queued before the others, which are parts fetched ahead of a reader (up to 32 of them would otherwise go first).
   */
  async turn(url: string, signal: AbortSignal, urgent = false): Promise<HostTurn> {
    const key = originOf(url);
    const h = this.host(key);
    const queue = urgent ? h.urgent : h.waiting;
    let woken = false; // (a caller woken from the queue keeps its place should another have taken the turn meanwhile)
    for (;;) {
      if (signal.aborted) {
        if (woken) wakeNext(h); // (the wake it had is passed on: the others would wait for another turn to end)
        throw new FetchError(url, 'aborted', 'aborted');
      }
      const pause = h.pausedUntil - this.now();
      const ahead = h.urgent.length + (urgent ? 0 : h.waiting.length);
      if (pause > 0) await sleep(pause, signal);
      else if (h.taken < h.limit && (woken || ahead === 0)) break;
      else {
        await this.queued(queue, signal, woken);
        woken = true;
      }
    }
    h.taken++;
    if (h.taken < h.limit) wakeNext(h); // room for more than the one woken (a pause ended, the limit grew)
    return this.turnAt(key, h);
  }

  private turnAt(key: string, h: Host): HostTurn {
    let sent = false;
    let over = false;
    return {
      send: () => {
        // Turns taken before the host answered busy (all of a make-image's first wave) would go over the limit it learned.
        if (h.sending >= h.limit) throw new HostFull(`mirror ${key} is at its limit of ${h.limit} request(s) at once`);
        sent = true;
        h.sending++;
      },
      busy: (e) => this.busy(key, h, e),
      end: () => {
        if (over) return;
        over = true;
        h.taken--;
        if (sent) h.sending--;
        this.raise(h);
        wakeNext(h);
      },
    };
  }

  /**
   * A 503 or 429 while others of ours ran at the host: its limit is what it was serving (see the class). Not past
   * MAX_BUSY_PER_URL busy answers to one URL since the limit last grew: one object a CDN cannot serve, or a proxy's answer
   * for an origin it cannot reach, would else take the limit down by one per retry, to 1, before the failure showed; nor
   * would its Retry-After pause the whole host at every retry (a busy answer alone, with one, counts for that too).
   */
  private busy(key: string, h: Host, e: FetchError): boolean {
    if (e.kind !== 'status' || (e.status !== 503 && e.status !== 429)) return false;
    const others = h.sending - 1; // (this request is still counted)
    // Alone: the server's state, not a limit on us; the parts' rounds retry it, after its Retry-After.
    if (others < 1) {
      if (e.retryAfterMs !== undefined && counted(h.pausedUrls, e.url)) this.pause(h, e.retryAfterMs);
      return false;
    }
    if (!counted(h.busyUrls, e.url)) return false; // (the URL's own failure: no limit, and no pause of the host either)
    const now = this.now();
    if (e.retryAfterMs !== undefined) this.pause(h, e.retryAfterMs);
    if (others < h.limit) {
      if (h.limit === Infinity) this.log(`mirror ${key} refused a request with HTTP ${e.status} while ${others} other(s) of ours ran: asking it at most ${others} at a time`);
      h.limit = others;
    }
    h.changedAt = now;
    return true;
  }

  /** No new turn at the host for `ms` (a Retry-After), at most MAX_PAUSE_MS. */
  private pause(h: Host, ms: number): void {
    h.pausedUntil = Math.max(h.pausedUntil, this.now() + Math.min(MAX_PAUSE_MS, ms));
  }

  private raise(h: Host): void {
    if (h.limit === Infinity || this.now() - h.changedAt < RAISE_MS) return;
    h.limit++;
    h.changedAt = this.now();
    h.busyUrls.clear();
  }

  private queued(queue: Array<() => void>, signal: AbortSignal, front: boolean): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        signal.removeEventListener('abort', gone);
        resolve();
      };
      const gone = (): void => {
        const i = queue.indexOf(wake);
        if (i >= 0) queue.splice(i, 1);
        wake();
      };
      if (front) queue.unshift(wake);
      else queue.push(wake);
      signal.addEventListener('abort', gone, { once: true });
    });
  }

  private host(key: string): Host {
    let h = this.hosts.get(key);
    if (!h) {
      h = { taken: 0, sending: 0, limit: Infinity, pausedUntil: 0, changedAt: 0, waiting: [], urgent: [], busyUrls: new Map(), pausedUrls: new Map() };
      this.hosts.set(key, h);
    }
    return h;
  }
}

/** Counts one more answer for `url` in `byUrl`, unless it has MAX_BUSY_PER_URL already (then false). */
function counted(byUrl: Map<string, number>, url: string): boolean {
  const seen = byUrl.get(url) ?? 0;
  if (seen >= MAX_BUSY_PER_URL) return false;
  if (byUrl.size >= MAX_BUSY_URLS) byUrl.clear();
  byUrl.set(url, seen + 1);
  return true;
}

/** Wakes the first caller queued at the host, urgent ones first. */
function wakeNext(h: Host): void {
  (h.urgent.shift() ?? h.waiting.shift())?.();
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}
