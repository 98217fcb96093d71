import { homedir } from 'node:os';
import path from 'node:path';
import { UsageError } from '../format/errors.js';

/**
 * The kinds of value an option takes. One parser per kind serves the command line and the configuration
 * file alike, so a value means the same in both; only the wording of a complaint differs by place.
 */
export interface ValueKind<T> {
  /** The value, or undefined when `text` is not one. `configDir`: the folder of the file it came from. */
  parse(text: string, configDir?: string): T | undefined;
  /** What is wrong, on the command line: follows `--flag: "text"`. */
  onCommandLine: string;
  /** What is wrong, in the configuration file: follows `[section] key = "text":`. */
  inConfigFile: string;
}

/**
 * A size: digits (a fraction allowed), then nothing or B for bytes, or K, M, G or T (powers of 1024) alone or with B or
 * iB: "4096", "512k", "1.5G", "2GiB", "64MB". Undefined when it is not one, or not a whole number of bytes JavaScript
 * holds exactly (400 digits were Infinity, which lru-cache refused later without naming --memory). Only this grammar:
 * `Number` would take hex, binary and exponents, and the old pattern read "1i" and "1ib" as 1 byte.
 */
export function sizeOf(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?$/i.exec(text.trim());
  if (!m) return undefined;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[(m[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  const bytes = Math.floor(Number(m[1]) * mult);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

export const SIZE: ValueKind<number> = {
  parse: sizeOf,
  onCommandLine: 'is not a size (examples: 512M, 2G, 1048576)',
  inConfigFile: 'not a size (examples: 512M, 20G)',
};

/** A size, raised to `min` rather than refused: below it the setting only costs requests. */
export function sizeAtLeast(min: number): ValueKind<number> {
  return { ...SIZE, parse: (text) => { const n = sizeOf(text); return n === undefined ? undefined : Math.max(min, n); } };
}

/**
 * A whole number written in decimal digits only, or undefined. Not `Number(text)` alone: it reads "" and " " as 0,
 * "0x10" as 16, "0b11" as 3 and "1e15" as a thousand million million, none of which a user means as a count.
 */
export function wholeNumber(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A whole number of at least `min`. */
export function count(min: number): ValueKind<number> {
  return {
    parse: (text) => {
      const n = wholeNumber(text);
      return n !== undefined && n >= min ? n : undefined;
    },
    onCommandLine: `is not a whole number of at least ${min}`,
    inConfigFile: `expected a whole number of at least ${min}`,
  };
}

/**
 * The shortest timeout: 1 ms. The value goes on as whole milliseconds, and undici takes a timeout of 0 as none at all,
 * so "0.0001" (0 ms once rounded) made a stalled mirror hang a read for ever. Any smaller value is refused, not raised:
 * a user who typed it meant something else.
 */
const MIN_TIMEOUT_MS = 1;

/** Seconds (at least 0.001, at most an hour) in decimal ("30", "2.5", ".5"), as whole milliseconds. */
export const SECONDS_AS_MS: ValueKind<number> = {
  parse: (text) => {
    if (!/^(?:\d+(?:\.\d*)?|\.\d+)$/.test(text)) return undefined;
    const secs = Number(text);
    return secs * 1000 >= MIN_TIMEOUT_MS && secs <= 3600 ? Math.round(secs * 1000) : undefined;
  },
  onCommandLine: 'is not a number of seconds (at least 0.001, at most 3600)',
  inConfigFile: 'expected seconds, at least 0.001 and at most 3600',
};

export const BOOLEAN: ValueKind<boolean> = {
  parse: (text) => {
    const v = text.toLowerCase();
    if (['true', 'yes', '1', 'on'].includes(v)) return true;
    if (['false', 'no', '0', 'off'].includes(v)) return false;
    return undefined;
  },
  onCommandLine: 'is not true or false',
  inConfigFile: 'expected true or false',
};

/** A path; in the configuration file `~/` is the home folder and a relative path is relative to the file. */
export const PATH: ValueKind<string> = {
  parse: (text, configDir) => (configDir === undefined ? text : path.resolve(configDir, expandHome(text))),
  onCommandLine: 'is not a path',
  inConfigFile: 'expected a path',
};

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(homedir(), p.slice(1)) : p;
}

/** A mirror URL must be an absolute http(s) URL; returns the problem, or undefined. */
export function mirrorUrlProblem(url: string): string | undefined {
  if (!/^https?:\/\//i.test(url)) return `"${url}" is not an http:// or https:// URL`;
  try {
    new URL(url);
  } catch {
    return `"${url}" is not a valid URL`;
  }
  // Part paths are appended to the URL: after a `#` they would be a fragment, which is never sent, so every part would be
  // asked for at the same wrong address.
  if (url.includes('#')) return `"${url}" holds "#", which starts a URL fragment (never sent to the server): write it as %23`;
  return undefined;
}

/**
 * A mirror's URL as a label's value: part paths are appended to it as they are (spec §5.5), so one that does not end
 * in `/` is given one, as jigdo-lite does with the mirror it asks for (spec §5.3): `--mirror Debian=http://host/debian`
 * asked for `http://host/debianpool/…` (every part a 404, then the .jigdo's own servers, silently).
 */
export function mirrorUrl(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}

/** A command-line value of `kind`, or a usage error naming the option. */
export function fromCommandLine<T>(kind: ValueKind<T>, option: string, text: string): T {
  const value = kind.parse(text);
  if (value === undefined) throw new UsageError(`${option}: "${text}" ${kind.onCommandLine}`);
  return value;
}
