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
    const shownValue = value.replace(/\/\/[^/@]*@/, '//***@'); // never a password in a message
    throw new Error(`${name}="${shownValue}" is not a proxy address (expected host:port or http://host:port)`);
  }
  return url;
}

/** The proxies to give undici's agent (each undefined when its variables are unset). */
export function proxySettings(env: NodeJS.ProcessEnv = process.env): ProxySettings {
  const pick = (lower: string, upper: string): string | undefined => (env[lower] ? proxyUrl(lower, env[lower]) : proxyUrl(upper, env[upper]));
  return { httpProxy: pick('http_proxy', 'HTTP_PROXY'), httpsProxy: pick('https_proxy', 'HTTPS_PROXY') };
}
