/**
 * The URL a request goes to, from a candidate string (jigdo strings are concatenated raw, spec §5.5: percent-encoded
 * only here, when the request is built). The URL parser encodes spaces and non-ASCII itself; `#` and control
 * characters are encoded first: the parser takes `#` for the start of a fragment (never sent) and drops TABs and
 * newlines, so `x#y.bin` was asked for as `x`, and `tab<TAB>x.bin` as `tabx.bin`.
 */
export function requestUrl(url: string): string {
  return new URL(url.replace(/[#\u0000-\u001f\u007f]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)).href;
}
