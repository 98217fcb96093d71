import { JigdoError } from '../format/errors.js';
import type { JigdoFile, JigdoImage, JigdoValue } from '../format/jigdo.js';
import type { Location } from '../format/location.js';
import { LabelMap } from '../format/resolve.js';
import type { ImageLayout } from '../image/layout.js';
import type { CacheStats } from '../cache/cache-stats.js';
import { PartCache } from '../cache/part-cache.js';
import type { PartProvider } from '../sources/part-store.js';
import { Slots } from '../util/slots.js';
import { backoff, sleep } from './backoff.js';
import type { FetchContext } from './fetch-context.js';
import { toFetchError, type FetchError } from './fetch-error.js';
import { HostLimits } from './host-limits.js';
import { HttpClient } from './http-client.js';
import { fetchThreadCount } from './raw-http/fetch-threads.js';
import { MirrorBoard, type MirrorStats, type PartFetchStats } from './mirror-board.js';
import type { NetworkOptions } from './network-options.js';
import { RemoteParts } from './remote-parts.js';
import { TemplateDownloads } from './template-download.js';

export { NETWORK_DEFAULTS, type NetworkOptions } from './network-options.js';

/**
 * Parts from the network. A part's candidate URLs (spec §5.5, `--mirror` ones first) are tried in order,
 * healthy mirrors before demoted ones. The bytes go to a temporary file of the disk cache; only after
 * their checksum matched are they renamed into the cache and served. Big parts are fetched as parallel
 * ranges, and a cut range resumes where it stopped. A mirror answering 404/5xx, cutting, stalling,
 * sending a short body or wrong bytes is left for the next one; after every candidate failed, a few more
 * rounds with backoff; then the part is unavailable (the read gets EIO, one log line names the part).
 * (remote-parts.ts, part-fetch.ts; templates: template-download.ts.)
 */

/** What `jigdofs status` shows about the network: JSON-serializable. */
export interface NetworkStats {
  offline: boolean;
  mirrors: MirrorStats[];
  parts: PartFetchStats;
  cache: CacheStats;
  templates: { fetched: number; fromCache: number };
}

const MAX_JIGDO_BYTES = 64 << 20;

/**
 * The process's network: builds the HTTP client, the mirror board, the disk cache and the request slots
 * once, and gives the part providers and the loading hooks built on them.
 *
 * Owns all of those; `online` is what its downloads share, absent with --offline (then `http` is too).
 * `close` cuts the HTTP client first (running fetches end as 'aborted'), then trims the cache.
 */
export class Network {
  readonly board: MirrorBoard;
  readonly cache: PartCache;
  readonly http: HttpClient | undefined;
  private readonly online: FetchContext | undefined;
  private readonly templates: TemplateDownloads;
  private readonly hosts: HostLimits;

  constructor(readonly opts: NetworkOptions) {
    this.board = new MirrorBoard(opts.log);
    this.cache = new PartCache({ dir: opts.cacheDir, maxBytes: opts.cacheSize, log: opts.log, hashFile: opts.hashFile, dropPages: opts.dropPages, trackAdopted: opts.keepDownloads === false });
    this.http = opts.offline ? undefined : new HttpClient({ timeoutMs: opts.timeoutMs, connections: opts.connections, fetchThreads: fetchThreadCount() });
    const slots = new Slots(opts.connections);
    this.hosts = new HostLimits(opts.log);
    this.online = this.http && { http: this.http, board: this.board, cache: this.cache, opts, request: (fn) => slots.run(fn), hosts: this.hosts };
    this.templates = new TemplateDownloads(this.cache, this.online);
  }

  /** `--mirror` values as extra [Servers] lines (spec §5.1: inserted before the file's own). */
  extraServers(base: Location): Map<string, JigdoValue[]> {
    return new Map([...this.opts.mirrors].map(([label, urls]) => [label, urls.map((uri) => ({ uri, weight: 0, base }))]));
  }

  /** The providers to put after local copies: the disk cache (by name before the --scan walk's files), then (unless offline) the mirrors. */
  providers(ctx: { jigdo: JigdoFile; layout: ImageLayout }, fetchParts = true): PartProvider[] {
    const kind = ctx.layout.checksumKind;
    // Twice: by checksum name before the --scan walk's files (atHand), then with the unhashed files of an interrupted
    // run adopted (a copy and a hash: not for parts a --scan copy has).
    const named: PartProvider = {
      name: 'cache',
      atHand: true,
      find: async (key) => {
        const need = ctx.layout.parts.get(key);
        return need && this.cache.lookupPart(kind, key, need.length, true);
      },
    };
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
      // A job that keeps none of its downloads (make-image without --keep-parts; the image matched): the unhashed
      // downloads of an earlier, interrupted run that it adopted go too. Its hashed ones stay: anything under a
      // checksum name may be a mount's.
      confirmDeferred: async () => {
        if (this.opts.keepDownloads === false) await this.cache.removeCopies(this.cache.takeAdopted());
      },
      watch: (w) => this.cache.room.watch(w),
    };
    if (!this.online || !fetchParts) return [named, cache];
    const labels = new LabelMap(ctx.jigdo.servers, this.extraServers(ctx.jigdo.location));
    const remote = new RemoteParts(this.online, ctx.jigdo, ctx.layout, labels, new Set([...this.opts.mirrors.values()].flat()));
    return [named, cache, remote];
  }

  /** Reads a whole remote .jigdo or [Include] (the `setRemoteLoader` hook), with retries. */
  async loadRemote(url: string): Promise<Buffer> {
    const online = this.online;
    if (!online) throw new JigdoError(url, 'cannot fetch URLs with --offline');
    let last: FetchError | undefined;
    for (let attempt = 0; attempt <= this.opts.retries; attempt++) {
      if (attempt > 0) await sleep(backoff(attempt));
      try {
        return await online.request(() => online.http.fetchBuffer(url, MAX_JIGDO_BYTES));
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
  fetchTemplate(loc: Location, image: JigdoImage, matches?: (file: string) => Promise<boolean>): Promise<string> {
    return this.templates.fetch(loc, image, matches);
  }

  stats(): NetworkStats {
    const { mirrors, parts } = this.board.snapshot();
    for (const m of mirrors) {
      const limit = this.hosts.limitOf(m.mirror);
      if (limit !== undefined) m.limit = limit;
    }
    return { offline: !this.http, mirrors, parts, cache: this.cache.stats(), templates: this.templates.stats() };
  }

  /** The same, with the cache counted if it was not yet (a directory walk). */
  async fullStats(): Promise<NetworkStats> {
    await this.cache.refreshStats();
    return this.stats();
  }

  /**
   * Ends network use: fetches still running (prefetches of a mount going away) are cut, not waited for, but their
   * cleanup is (PartCache.endWrites); then the cache is brought under its limit, now that no part is in use.
   */
  async close(): Promise<void> {
    await this.http?.close();
    await this.cache.endWrites(); // the cut downloads' temporary files and locks gone before the process may exit
    await this.cache.trim().catch((err: unknown) => this.opts.log(`cache: ${String(err)}`));
    await this.cache.close();
  }
}
