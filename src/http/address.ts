import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { valueWithin } from '../util/settle.js';

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

/** How long `status` waits for a host name to resolve (a dead resolver takes 10-30 s to say so). */
const LOOKUP_MS = 1000;

/** This machine's own addresses: loopback, and every interface's. */
function isOwnAddress(address: string): boolean {
  if (/^127\./.test(address) || address === '::1') return true;
  return Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address === address));
}

/**
 * Other control keys a server that a user names may be found under, once the address as typed has none, most likely
 * first: each address its host name resolves to (`localhost:8080` for a server on 127.0.0.1), then, for an address of
 * this machine, every interface on that port (a server on 0.0.0.0 or ::). `status` failed with "no daemon" unless the
 * host was spelled as the server listens. Another machine's address never reaches a server here.
 */
export async function otherServerKeys(a: ServerAddress): Promise<string[]> {
  const bare = a.host.replace(/^\[|\]$/g, '');
  const asked = isIP(bare) === 0 ? lookup(bare, { all: true }).then((list) => list.map((x) => x.address), () => []) : Promise.resolve([bare]);
  const addresses = await valueWithin(asked, LOOKUP_MS, []);
  const own = addresses.filter(isOwnAddress);
  // (An IPv6 address reaches a server on :: only; an IPv4 one reaches 0.0.0.0, and :: where it takes IPv4 as well.)
  const everyInterface = [...(own.some((x) => isIP(x) === 4) ? ['0.0.0.0', '[::]'] : []), ...(own.some((x) => isIP(x) === 6) ? ['[::]'] : [])];
  const typed = controlKey(a);
  return [...new Set([...addresses.map(urlHost), ...everyInterface].map((host) => controlKey({ host, port: a.port })))].filter((k) => k !== typed);
}
