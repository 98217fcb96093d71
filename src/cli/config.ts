import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import ini from 'ini';
import { JigdoError, errorMessage } from '../format/errors.js';

/**
 * The user configuration file: defaults for mirrors, the cache and network limits, overridden by
 * command-line options. `$XDG_CONFIG_HOME/jigdofs/config.ini` (else `~/.config/jigdofs/config.ini`), or
 * `--config FILE`. A missing default file is fine; a missing `--config` file or a bad value is an error
 * naming the file, the key and the problem. Example:
 *
 *   [cache]
 *   dir = ~/.cache/jigdofs
 *   size = 20G
 *
 *   [network]
 *   offline = false
 *   timeout = 30            ; seconds without data before a mirror counts as stalled
 *   connections = 8         ; parallel HTTP requests
 *   retries = 2             ; extra rounds over all mirrors after each one failed
 *   range-size = 4M         ; bigger parts are fetched as parallel ranges of this size
 *   streams-per-part = 4
 *
 *   [mirrors]
 *   Debian = http://deb.debian.org/debian/
 *   ; several for one label, tried in order:
 *   ; Debian[] = http://ftp.de.debian.org/debian/
 *   ; Debian[] = http://ftp.fr.debian.org/debian/
 */

export interface UserConfig {
  /** The file read, if any. */
  file?: string;
  cacheDir?: string;
  cacheSize?: number;
  offline?: boolean;
  timeoutMs?: number;
  connections?: number;
  retries?: number;
  rangeSize?: number;
  streamsPerPart?: number;
  /** Label → URLs, tried before the .jigdo's own servers (like `--mirror`). */
  mirrors: Map<string, string[]>;
  /** Keys that were not understood (reported, not fatal). */
  warnings: string[];
}

export function defaultConfigPath(): string {
  const base = process.env.XDG_CONFIG_HOME || path.join(homedir(), '.config');
  return path.join(base, 'jigdofs', 'config.ini');
}

/** "64M", "1.5G", "4096", "512k" → bytes; undefined when it is not a size. */
export function sizeOf(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(text.trim());
  if (!m) return undefined;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * mult);
}

/** A mirror URL must be an absolute http(s) URL; returns the problem, or undefined. */
export function mirrorUrlProblem(url: string): string | undefined {
  if (!/^https?:\/\//i.test(url)) return `"${url}" is not an http:// or https:// URL`;
  try {
    new URL(url);
  } catch {
    return `"${url}" is not a valid URL`;
  }
  return undefined;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(homedir(), p.slice(1)) : p;
}

/** Reads the configuration: `file` when given (it must exist), else the default file if there is one. */
export function loadConfig(file?: string): UserConfig {
  const explicit = file !== undefined;
  const where = path.resolve(file ?? defaultConfigPath());
  const config: UserConfig = { mirrors: new Map(), warnings: [] };
  let text: string;
  try {
    text = readFileSync(where, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!explicit && (code === 'ENOENT' || code === 'ENOTDIR')) return config;
    throw new JigdoError(where, code === 'ENOENT' ? 'configuration file not found' : `cannot read: ${errorMessage(err)}`);
  }
  config.file = where;
  const data = ini.parse(text) as Record<string, unknown>;
  const bad = (key: string, value: unknown, problem: string): never => {
    throw new JigdoError(where, `${key} = ${JSON.stringify(value)}: ${problem}`);
  };
  const str = (key: string, value: unknown): string => {
    if (typeof value === 'string' && value.trim() !== '') return value.trim();
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    return bad(key, value, 'expected a single value');
  };
  const int = (key: string, value: unknown, min: number): number => {
    const n = Number(str(key, value));
    if (!Number.isInteger(n) || n < min) bad(key, value, `expected a whole number of at least ${min}`);
    return n;
  };
  const size = (key: string, value: unknown): number => sizeOf(str(key, value)) ?? bad(key, value, 'not a size (examples: 512M, 20G)');
  const bool = (key: string, value: unknown): boolean => {
    const v = str(key, value).toLowerCase();
    if (['true', 'yes', '1', 'on'].includes(v)) return true;
    if (['false', 'no', '0', 'off'].includes(v)) return false;
    return bad(key, value, 'expected true or false');
  };

  for (const [section, body] of Object.entries(data)) {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      config.warnings.push(`${where}: ignored "${section}" outside a section ([cache], [network] or [mirrors])`);
      continue;
    }
    for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
      const name = `[${section}] ${key}`;
      if (section === 'mirrors') {
        const urls = (Array.isArray(value) ? value : [value]).map((v) => str(name, v));
        for (const u of urls) {
          const problem = mirrorUrlProblem(u);
          if (problem) bad(name, u, problem);
        }
        config.mirrors.set(key, urls);
        continue;
      }
      const known: Record<string, Record<string, () => void>> = {
        cache: {
          dir: () => (config.cacheDir = path.resolve(path.dirname(where), expandHome(str(name, value)))),
          size: () => (config.cacheSize = size(name, value)),
        },
        network: {
          offline: () => (config.offline = bool(name, value)),
          timeout: () => {
            const secs = Number(str(name, value));
            if (!(secs > 0 && secs <= 3600)) bad(name, value, 'expected seconds, more than 0 and at most 3600');
            config.timeoutMs = Math.round(secs * 1000);
          },
          connections: () => (config.connections = int(name, value, 1)),
          retries: () => (config.retries = int(name, value, 0)),
          'range-size': () => (config.rangeSize = Math.max(64 * 1024, size(name, value))),
          'streams-per-part': () => (config.streamsPerPart = int(name, value, 1)),
        },
      };
      const set = known[section]?.[key];
      if (set) set();
      else config.warnings.push(`${where}: ignored unknown setting ${name}`);
    }
  }
  return config;
}
