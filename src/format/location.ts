import path from 'node:path';
import { percentDecode, urlText } from './byte-string.js';
import { JigdoError } from './errors.js';

/**
 * Where a .jigdo, template or part lives: an absolute local path or an http(s) URL. Relative references
 * are resolved against the file they appear in (GTK jigdo semantics, spec §5.2 / §5.5 step 2).
 */
export type Location = { kind: 'file'; path: string } | { kind: 'url'; url: string };

const REMOTE = /^https?:\/\//i;

export function isRemote(text: string): boolean {
  return REMOTE.test(text);
}

/** `scheme://`: a URL, not a relative path (`ftp://x/y.jigdo` was looked for as the file `ftp:/x/y.jigdo`). */
const ANY_URL = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * A location given by the user on the command line (path relative to the current directory, or URL). A URL of
 * another scheme is refused (a file of that name is `./ftp://…`).
 */
export function locationFromUser(text: string): Location {
  if (isRemote(text)) return { kind: 'url', url: parseUrl(text, undefined, text).href };
  if (ANY_URL.test(text)) throw new JigdoError(text, 'only http:// and https:// URLs are fetched');
  return { kind: 'file', path: path.resolve(text) };
}

/** `new URL`, with one clear error naming the file the reference came from instead of "Invalid URL". */
function parseUrl(ref: string, base: string | undefined, file: string): URL {
  try {
    return new URL(ref, base);
  } catch {
    throw new JigdoError(file, `"${ref}" is not a valid URL`);
  }
}

export function describeLocation(loc: Location): string {
  return loc.kind === 'file' ? loc.path : loc.url;
}

/**
 * Resolves `ref` (a URL, a `file:` URI, or a relative reference) against the location of the file it
 * came from. Returns undefined for a local path reached from a remote file: a remote .jigdo must not
 * make us read local files. A reference that is no valid URL is a JigdoError naming that file. Bytes of
 * `ref` that are not UTF-8 (byte-string.ts) stay bytes: percent-encoded in a URL, escaped in a path.
 */
export function resolveReference(ref: string, base: Location): Location | undefined {
  if (isRemote(ref)) {
    const url = urlText(ref);
    parseUrl(url, undefined, describeLocation(base)); // checked, but kept as written: jigdo joins strings verbatim
    return { kind: 'url', url };
  }
  if (/^file:/i.test(ref)) {
    if (base.kind === 'url') return undefined;
    const rest = ref.slice(5).replace(/^\/\/(?=\/)/, ''); // file:///abs → /abs
    return { kind: 'file', path: path.resolve(path.dirname(base.path), rest) };
  }
  if (base.kind === 'url') return { kind: 'url', url: parseUrl(urlText(ref), base.url, base.url).href };
  return { kind: 'file', path: path.resolve(path.dirname(base.path), ref) };
}

/**
 * The last path component of a location as a local file name, or undefined when it cannot be one. A URL's
 * component is %-decoded (`x%20y.template`), so it may come out as `..`, or hold a `/` (`..%2Fetc`) or
 * a NUL: such a name would reach outside the folder it is looked up in, and is refused. A malformed
 * %-escape throws an Error saying so (the caller names the file it came from). Decoded bytes that are not
 * UTF-8 stay escaped bytes (byte-string.ts).
 */
export function baseName(loc: Location): string | undefined {
  let name: string;
  if (loc.kind === 'file') name = path.basename(loc.path);
  else {
    const raw = new URL(loc.url).pathname.split('/').pop() ?? '';
    name = percentDecode(raw); // `caf%E9.template` is the same name as the .jigdo's `caf\xe9.template`
  }
  return name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name) ? undefined : name;
}
