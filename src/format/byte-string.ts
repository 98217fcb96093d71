/**
 * Names as byte strings. jigdo-file treats part paths, labels and URIs as bytes: a .jigdo made from an old
 * Mac or Windows disc carries Latin-1, MacRoman or CP437 names (`M\xfcller.pdf`). The code keeps them as
 * JS strings the way Python's `surrogateescape` does: every byte that is not part of valid UTF-8 becomes
 * one lone surrogate U+DC80..U+DCFF (byte 0x80..0xFF); valid UTF-8 decodes as usual. So a name survives
 * parsing, joining, sorting and JSON (the hash index keeps `\udce9` exactly), and is turned back into its
 * exact bytes where it meets the world:
 * - a file: `fsPath` gives a Buffer path (Node would write a string's lone surrogate as U+FFFD);
 * - a URL: `urlText` percent-encodes the escaped bytes (`caf%E9.bin`), as wget does with raw bytes;
 * - a message: `shown` writes `\xNN`; `quoted` also escapes what a terminal would act on (controls, C1, bidi);
 * - raw output (`missing` prints what jigdo-file prints): `encodeBytes`.
 * This module owns both directions; nothing else decodes or encodes escaped bytes.
 */

const ESCAPED = /[\udc80-\udcff]/u;
const ESCAPED_ALL = /[\udc80-\udcff]/gu;
const ESCAPE_BASE = 0xdc00;

/** True when `text` holds an escaped (non-UTF-8) byte. The `u` flag: a valid surrogate pair is never one. */
export function hasEscapedBytes(text: string): boolean {
  return ESCAPED.test(text);
}

/** Whether `buf[at]` exists (before `end`) and lies in lo..hi. */
function inRange(buf: Uint8Array, at: number, end: number, lo: number, hi: number): boolean {
  if (at >= end) return false;
  const c = buf[at]!;
  return c >= lo && c <= hi;
}

/**
 * The length of the valid UTF-8 sequence at `i` (1..4), or 0 when the byte there starts none (RFC 3629).
 * No closures or arrays: it runs once per byte of a non-UTF-8 text.
 */
function sequenceLength(buf: Uint8Array, i: number, end: number): number {
  const b = buf[i]!;
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) return inRange(buf, i + 1, end, 0x80, 0xbf) ? 2 : 0;
  if (b >= 0xe0 && b <= 0xef) {
    // E0: no overlongs; ED: no UTF-16 surrogates (U+D800..U+DFFF are not characters).
    const lo = b === 0xe0 ? 0xa0 : 0x80;
    const hi = b === 0xed ? 0x9f : 0xbf;
    return inRange(buf, i + 1, end, lo, hi) && inRange(buf, i + 2, end, 0x80, 0xbf) ? 3 : 0;
  }
  if (b >= 0xf0 && b <= 0xf4) {
    // F0: no overlongs; F4: nothing above U+10FFFF.
    const lo = b === 0xf0 ? 0x90 : 0x80;
    const hi = b === 0xf4 ? 0x8f : 0xbf;
    return inRange(buf, i + 1, end, lo, hi) && inRange(buf, i + 2, end, 0x80, 0xbf) && inRange(buf, i + 3, end, 0x80, 0xbf) ? 4 : 0;
  }
  return 0;
}

/** The slow path of decodeBytes: valid runs decoded by Node, each other byte escaped on its own. */
function decodeEscaping(buf: Buffer, start: number, end: number): string {
  // Pieces joined once at the end, escaped bytes converted 4096 at a time: appending one character at a
  // time made a chain of cons strings that took seconds for a few MB of Latin-1 (found by test/fuzz).
  const parts: string[] = [];
  let codes: number[] = [];
  const flush = (): void => {
    if (codes.length > 0) parts.push(String.fromCharCode(...codes));
    codes = [];
  };
  let run = start;
  let i = start;
  while (i < end) {
    const n = sequenceLength(buf, i, end);
    if (n > 0) {
      i += n;
      continue;
    }
    if (run < i) {
      flush();
      parts.push(buf.toString('utf8', run, i));
    }
    codes.push(ESCAPE_BASE + buf[i]!);
    if (codes.length >= 4096) flush();
    run = ++i;
  }
  flush();
  if (run < end) parts.push(buf.toString('utf8', run, end));
  return parts.join('');
}

/**
 * Bytes as a string: UTF-8 where it is valid, each other byte as U+DC80+byte (surrogateescape). Valid text
 * costs one `toString` (a U+FFFD in it means Node replaced something, or the text holds a real U+FFFD: only
 * then is it decoded again byte by byte).
 */
export function decodeBytes(buf: Buffer, start = 0, end = buf.length): string {
  const text = buf.toString('utf8', start, end);
  return text.includes('\ufffd') ? decodeEscaping(buf, start, end) : text;
}

/** The exact bytes of a string made by decodeBytes (escaped bytes back to themselves, the rest as UTF-8). */
export function encodeBytes(text: string): Buffer {
  if (!hasEscapedBytes(text)) return Buffer.from(text, 'utf8');
  // One buffer, written in place: two small buffers per escaped byte and a concat of them all took ~19 s for
  // 8 MiB of Latin-1. byteLength counts an escaped byte (a lone surrogate) as U+FFFD's 3 bytes, so it is enough.
  const out = Buffer.allocUnsafe(Buffer.byteLength(text, 'utf8'));
  let at = 0;
  let run = 0;
  for (const m of text.matchAll(ESCAPED_ALL)) {
    if (m.index > run) at += out.write(text.slice(run, m.index), at, 'utf8');
    out[at++] = m[0].charCodeAt(0) - ESCAPE_BASE;
    run = m.index + 1;
  }
  if (run < text.length) at += out.write(text.slice(run), at, 'utf8');
  return out.subarray(0, at);
}

/** A path for `node:fs`: the string itself when it is plain UTF-8, else its exact bytes as a Buffer. */
export function fsPath(file: string): string | Buffer {
  return hasEscapedBytes(file) ? encodeBytes(file) : file;
}

/** A byte as `%XX` (upper case, as RFC 3986 prefers). */
const percent = (byte: number): string => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
/** A byte as a message writes it: `\xNN` (shown, quoted). */
const backslashHex = (byte: number): string => `\\x${byte.toString(16).padStart(2, '0')}`;

/**
 * What a URL parser would not keep as it is: `#` (it starts a fragment, never sent), a backslash (read as `/`), and
 * control characters (TAB, CR and LF are dropped); and a `%` that starts no `%XX` escape, which the parser keeps but a
 * server refuses (nginx: 400) where wget, and so jigdo-lite, sends `%25`. A jigdo string is a file's name, joined
 * verbatim (spec §5.5).
 */
const URL_ALTERED = /[#\\\u0000-\u001f\u007f]|%(?![0-9A-Fa-f]{2})/g;

/**
 * A URL as text a URL parser keeps exactly: each escaped byte percent-encoded (`caf\udce9` → `caf%E9`), and so is
 * what the parser would alter or a server refuse (URL_ALTERED: `a#3k.bin` was asked for as `a`, `a\b.bin` as `a/b.bin`,
 * `50%off.bin` was refused), as wget does.
 * The rest is left to the parser, which percent-encodes valid non-ASCII characters as their UTF-8 bytes: so the
 * server is asked for the name's exact bytes either way. Applying it twice changes nothing.
 */
export function urlText(text: string): string {
  const bytes = hasEscapedBytes(text) ? text.replace(ESCAPED_ALL, (ch) => percent(ch.charCodeAt(0) - ESCAPE_BASE)) : text;
  return bytes.replace(URL_ALTERED, (ch) => percent(ch.charCodeAt(0)));
}

/** Bytes encodeURIComponent leaves as they are. */
const UNRESERVED = /[A-Za-z0-9\-_.!~*'()]/;

/**
 * A name as one URL path component, by its exact bytes: what encodeURIComponent gives for plain UTF-8
 * (which throws on an escaped byte: a lone surrogate), and `%E9` for the escaped byte 0xE9.
 */
export function percentEncodeComponent(name: string): string {
  if (!hasEscapedBytes(name)) return encodeURIComponent(name);
  let out = '';
  for (const byte of encodeBytes(name)) out += byte < 0x80 && UNRESERVED.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : percent(byte);
  return out;
}

const PERCENT_RUN = /(?:%[0-9a-fA-F]{2})+/g;

/**
 * A percent-encoded URL component as a name: the decoded bytes through decodeBytes, so `caf%E9` is the
 * same string the .jigdo's `caf\xe9` decodes to. A `%` not followed by two hex digits throws, as
 * decodeURIComponent does.
 */
export function percentDecode(text: string): string {
  if (/%(?![0-9a-fA-F]{2})/.test(text)) throw new URIError(`malformed %-escape in "${shown(text)}"`);
  return text.replace(PERCENT_RUN, (run) => decodeBytes(Buffer.from(run.replace(/%/g, ''), 'hex')));
}

/** A name for a message or a log line: each escaped byte as `\xNN` (written raw, it would come out as U+FFFD). */
export function shown(text: string): string {
  return hasEscapedBytes(text) ? text.replace(ESCAPED_ALL, (ch) => backslashHex(ch.charCodeAt(0) - ESCAPE_BASE)) : text;
}

/** C0 controls and DEL, as `quoted` writes them: `\xNN`. */
const CONTROL_ALL = /[\u0000-\u001f\u007f]/g;
/**
 * Characters a terminal may act on besides C0 and DEL, as `quoted` writes them: `\uNNNN`, so that U+009B (the bytes C2 9B)
 * is never mistaken for the non-UTF-8 byte 0x9B (`\x9b`). The C1 controls: a UTF-8 terminal takes U+009B as CSI and
 * U+009D as OSC, so they move the cursor, clear the screen or set the window title as ESC [ and ESC ] do. U+2028/2029 end
 * a line in some terminals; the bidirectional overrides and isolates (U+202A..202E, U+2066..2069) reorder what follows
 * them on the screen, so a name could show as another ("Trojan Source").
 */
const TERMINAL_ACTIVE = /[\u0080-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const backslashU = (code: number): string => `\\u${code.toString(16).padStart(4, '0')}`;

/**
 * A value of an input file (a .jigdo, a template, a configuration file) as text safe to write to a terminal, in a
 * one-line message or a line of `info` or `status`: `shown`, each C0 control and DEL as `\xNN` (a carriage return inside
 * a .jigdo value broke the line of its error; found by the fuzzer), and each other character a terminal acts on as
 * `\uNNNN` (see TERMINAL_ACTIVE): a hostile file must not recolour, overwrite or clear the screen. Not for a whole message
 * meant to span lines (a list of missing parts), nor for raw output (`missing` writes URLs as jigdo-file does).
 */
export function quoted(text: string): string {
  return shown(text)
    .replace(CONTROL_ALL, (ch) => backslashHex(ch.charCodeAt(0)))
    .replace(TERMINAL_ACTIVE, (ch) => backslashU(ch.charCodeAt(0)));
}

/** `text` (a .jigdo's value, a reason) on one line of at most `max` characters, safe for a terminal (quoted). */
export function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return quoted(flat.length > max ? `${flat.slice(0, max - 1)}…` : flat);
}
