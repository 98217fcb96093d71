import { readFileSync } from 'node:fs';
import { decodeBytes, encodeBytes } from '../format/byte-string.js';

/**
 * Command-line arguments by their exact bytes. Node decodes argv as UTF-8 and replaces every other byte with
 * U+FFFD, so `jigdofs info $'caf\xe9.jigdo'` would look for a file that does not exist. The kernel's copy,
 * /proc/self/cmdline, has the bytes: an argument holding U+FFFD is taken from there instead, as a byte string
 * (byte-string.ts: the bytes are kept as escapes, and fsPath opens the exact name). The background daemon of
 * `mount` gets its arguments in JIGDOFS_ARGV_HEX, since spawn() can only pass arguments as UTF-8 strings.
 */
export const ARGV_ENV = 'JIGDOFS_ARGV_HEX';

/** The raw arguments after the script: from JIGDOFS_ARGV_HEX (a daemon), else from /proc/self/cmdline. */
function rawArgs(count: number): Buffer[] | undefined {
  const hex = process.env[ARGV_ENV];
  if (hex !== undefined) {
    delete process.env[ARGV_ENV];
    return hex === '' ? [] : hex.split(',').map((h) => Buffer.from(h, 'hex'));
  }
  let cmdline: Buffer;
  try {
    cmdline = readFileSync('/proc/self/cmdline');
  } catch {
    return undefined;
  }
  const parts: Buffer[] = [];
  for (let at = 0; at < cmdline.length; ) {
    const end = cmdline.indexOf(0, at);
    parts.push(cmdline.subarray(at, end < 0 ? cmdline.length : end));
    at = end < 0 ? cmdline.length : end + 1;
  }
  return parts.slice(Math.max(0, parts.length - count));
}

/** `argv` (process.argv's shape) with each lossily decoded argument replaced by its exact byte string. */
export function exactArgv(argv: string[]): string[] {
  const args = argv.slice(2);
  if (!args.some((a) => a.includes('\ufffd')) && process.env[ARGV_ENV] === undefined) return argv;
  const raw = rawArgs(args.length);
  if (!raw || raw.length !== args.length) return argv;
  // Use the raw bytes only where they are this very argument (Node's lossy decoding of them gives it back).
  return [...argv.slice(0, 2), ...args.map((a, i) => (raw[i]!.toString('utf8') === a ? decodeBytes(raw[i]!) : a))];
}

/** The environment entry that gives a spawned jigdofs these exact arguments. */
export function argvEnv(args: string[]): Record<string, string> {
  return { [ARGV_ENV]: args.map((a) => encodeBytes(a).toString('hex')).join(',') };
}
