import type { PartCache } from '../cache/part-cache.js';
import type { HostLimits } from './host-limits.js';
import type { HttpClient } from './http-client.js';
import type { MirrorBoard } from './mirror-board.js';
import type { NetworkOptions } from './network-options.js';

/**
 * What every download of an online Network shares (desync's small-interface idea): the HTTP client, the
 * mirror board, the disk cache, the options and the request slots. Network builds one when it is not
 * offline, so the part and template downloads below it neither know the Network class nor check --offline.
 */
export interface FetchContext {
  readonly http: HttpClient;
  readonly board: MirrorBoard;
  readonly cache: PartCache;
  readonly opts: NetworkOptions;
  /** Runs `fn` in one of the process's HTTP request slots (`--connections` in all, first come first served). */
  request<T>(fn: () => Promise<T>): Promise<T>;
  /** Turns at each mirror host, taken before a request slot (a host's per-client limit, learned from its answers). */
  readonly hosts: HostLimits;
}
