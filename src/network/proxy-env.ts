import { isIP } from 'node:net';

/**
 * The proxies of the environment, as curl, wget and apt read them: `http_proxy` before `HTTP_PROXY`, `https_proxy`
 * before `HTTPS_PROXY`, and a value without a scheme (`proxy.example:3128`, the common form) taken as `http://`.
 * undici reads the same variables but takes a value without a scheme for a URL whose scheme is the host name: every
 * request then failed with "redirected to a malformed address", though nothing had redirected.
 */
export interface ProxySettings {
  httpProxy?: string;
  httpsProxy?: string;
}

/** `value` with `http://` in front when it names no scheme; undefined for an unset or empty variable. */
export function proxyUrl(name: string, value: string | undefined): string | undefined {
  if (!value) return undefined;
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  try {
    new URL(url);
  } catch {
    const shownValue = withoutPassword(value);
    throw new Error(`${name}="${shownValue}" is not a proxy address (expected host:port or http://host:port)`);
  }
  return url;
}

/** The proxies to give undici's agent (each undefined when its variables are unset). */
export function proxySettings(env: NodeJS.ProcessEnv = process.env): ProxySettings {
  const pick = (lower: string, upper: string): string | undefined => (env[lower] ? proxyUrl(lower, env[lower]) : proxyUrl(upper, env[upper]));
  return { httpProxy: pick('http_proxy', 'HTTP_PROXY'), httpsProxy: pick('https_proxy', 'HTTPS_PROXY') };
}

/** A proxy address as messages show it: never a password. */
export function withoutPassword(proxy: string): string {
  return proxy.replace(/\/\/[^/?#]*@/, '//***@'); // (up to the last @ of the authority: a password may hold one)
}

/** The proxy undici's EnvHttpProxyAgent sends `url` through, if any (https falls back to the http proxy, as there). */
export function proxyFor(proxies: ProxySettings, url: string): string | undefined {
  return url.startsWith('https:') ? (proxies.httpsProxy ?? proxies.httpProxy) : proxies.httpProxy;
}

/**
 * Whether a failed connection (Node's error: `hostname` for a failed look-up, `address` and `port` for a refused or
 * unreachable connect) was the one to `proxy`, not to the mirror: a dead proxy was reported as the mirror's failure.
 * Only what the error proves: a proxy named by host name, on the mirror's own port, is never blamed (NO_PROXY may
 * have sent the request past it).
 */
export function failedAtProxy(proxy: string, url: string, err: unknown, depth = 0): boolean {
  const at = (err ?? {}) as { hostname?: unknown; address?: unknown; port?: unknown; cause?: unknown; errors?: unknown };
  if (depth > 4) return false; // (a cycle of causes)
  // A host name with two addresses fails as an AggregateError of one error each; fetch() wraps errors in a cause.
  if (Array.isArray(at.errors)) return at.errors.length > 0 && at.errors.every((one) => failedAtProxy(proxy, url, one, depth + 1));
  if (at.hostname === undefined && at.port === undefined) return at.cause !== undefined && failedAtProxy(proxy, url, at.cause, depth + 1);
  const p = new URL(proxy);
  const host = p.hostname.replace(/^\[|\]$/g, '');
  const port = Number(p.port || (p.protocol === 'https:' ? 443 : 80));
  if (typeof at.hostname === 'string') return at.hostname === host;
  if (at.port !== port) return false;
  if (isIP(host) !== 0) return at.address === host;
  const target = new URL(url);
  return port !== Number(target.port || (target.protocol === 'https:' ? 443 : 80));
}
