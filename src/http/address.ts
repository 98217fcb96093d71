import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/**
 * Where a server listens, as users write it (`http://127.0.0.1:8080/`, `127.0.0.1:8080`, `[::1]:8080`),
 * and the key its control socket is named after: the same for the server and for `jigdofs status URL`.
 */
export interface ServerAddress {
  /** Host as it goes in a URL (IPv6 in brackets). */
  host: string;
  port: number;
}

/** The host part of a URL for a listen address (IPv6 literals get brackets). */
export const urlHost = (host: string): string => (host.includes(':') && !host.startsWith('[') ? `[${host}]` : host);

export const baseUrl = (a: ServerAddress): string => `http://${a.host}:${a.port}/`;

/** `status` names a server rather than a mountpoint when it says http:// or is HOST:PORT. */
export function looksLikeServer(arg: string): boolean {
  return /^https?:\/\//i.test(arg) || /^(\[[0-9a-f:.]+\]|[A-Za-z0-9.-]+):\d+\/?$/i.test(arg);
}

/** Parses a server as users name it; undefined when it is not one. */
export function parseServerAddress(arg: string): ServerAddress | undefined {
  try {
    const url = new URL(/^https?:\/\//i.test(arg) ? arg : `http://${arg}`);
    return { host: url.hostname, port: url.port === '' ? 80 : Number(url.port) };
  } catch {
    return undefined;
  }
}

/**
 * The name the control socket is derived from (see fuse/control.ts): an absolute pseudo-path, so that
 * it never depends on the current directory and never equals a real mountpoint's.
 */
export const controlKey = (a: ServerAddress): string => `/jigdofs-serve/${a.host.toLowerCase()}:${a.port}`;

/**
 * The control keys a server that a user names may be found under, most likely first: the address as typed, each
 * address its host name resolves to (`localhost:8080` for a server on 127.0.0.1), then every interface on that port
 * (a server on 0.0.0.0 or ::, named by one of the machine's addresses). Only `status` looks them up: it failed with
 * "no daemon" unless the host was spelled as the server listens.
 */
export async function serverKeys(a: ServerAddress): Promise<string[]> {
  const bare = a.host.replace(/^\[|\]$/g, '');
  const resolved = isIP(bare) === 0 ? await lookup(bare, { all: true }).then((list) => list.map((x) => urlHost(x.address)), () => []) : [];
  return [...new Set([a.host, ...resolved, '0.0.0.0', '[::]'].map((host) => controlKey({ host, port: a.port })))];
}
