import { urlText } from '../format/byte-string.js';

/**
 * The URL a request goes to, from a candidate's text (jigdo strings are joined raw, spec §5.5, and percent-encoded
 * here, when the request is built): what the URL parser would alter is encoded first (urlText: `#`, a backslash,
 * control characters), so that the server is asked for the file the .jigdo names.
 */
export function requestUrl(url: string): URL {
  return new URL(urlText(url));
}
