import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { kindOf } from '../util/open-regular.js';
import { xdgDir } from '../util/xdg-dir.js';
import path from 'node:path';
import ini from 'ini';
import { JigdoError, errorMessage } from '../format/errors.js';
import { configKeys, type ConfigValues } from './option-table.js';
import { mirrorUrl, mirrorUrlProblem } from './option-values.js';

/**
 * The user configuration file: defaults for mirrors, the cache and network limits, overridden by
 * command-line options. `$XDG_CONFIG_HOME/jigdofs/config.ini` (else `~/.config/jigdofs/config.ini`), or
 * `--config FILE`. A missing default file is fine; a missing `--config` file or a bad value is an error
 * naming the file, the key and the problem. The keys and their parsers are the option table's
 * (option-table.ts). Example:
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
 *   range-size = 4M         ; bigger parts a read waits for come as parallel ranges of this size
 *   streams-per-part = 4
 *
 *   [mirrors]
 *   Debian = http://deb.debian.org/debian/   ; a comment starts after a space: a URL may hold `;`
 *   ; (`#`, a URL fragment, is never sent to a server: a mirror URL holding one is refused; write %23)
 *   ; several for one label, tried in order:
 *   ; Debian[] = http://ftp.de.debian.org/debian/
 *   ; Debian[] = http://ftp.fr.debian.org/debian/
 */

export interface UserConfig extends ConfigValues {
  /** The file read, if any. */
  file?: string;
  /** Label → URLs, tried before the .jigdo's own servers (like `--mirror`). */
  mirrors: Map<string, string[]>;
  /** Keys that were not understood (reported, not fatal). */
  warnings: string[];
}

function defaultConfigPath(): string {
  return path.join(xdgDir('XDG_CONFIG_HOME', '.config'), 'jigdofs', 'config.ini');
}

/** Reads the configuration: `file` when given (it must exist), else the default file if there is one. */
export function loadConfig(file?: string): UserConfig {
  const explicit = file !== undefined;
  const where = path.resolve(file ?? defaultConfigPath());
  const config: UserConfig = { mirrors: new Map(), warnings: [] };
  let text: string;
  try {
    text = readConfigText(where);
  } catch (err) {
    if (err instanceof JigdoError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (!explicit && (code === 'ENOENT' || code === 'ENOTDIR')) return config;
    throw new JigdoError(where, code === 'ENOENT' ? 'configuration file not found' : `cannot read: ${errorMessage(err)}`);
  }
  config.file = where;
  applyConfig(config, ini.parse(forIni(text)) as Record<string, unknown>, where);
  return config;
}

/**
 * A jigdofs configuration is a few dozen lines: more than this (a wrong file, a device) is refused before it is parsed.
 * A 6 MB file of quotes took the INI parser past 300 MB of heap (found by the fuzzer).
 */
const MAX_CONFIG_BYTES = 1 << 20;

function readConfigText(where: string): string {
  // O_NONBLOCK: a FIFO must not wait for a writer (refused below); /dev/null stays an empty configuration.
  const fd = openSync(where, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (st.isFIFO() || st.isSocket()) throw new JigdoError(where, `not a jigdofs configuration file: it is ${kindOf(st)}`);
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let got = 0;
    for (let n = -1; n !== 0 && got < buf.length; got += n) n = readSync(fd, buf, got, buf.length - got, null);
    if (got > MAX_CONFIG_BYTES) throw new JigdoError(where, `not a jigdofs configuration file: longer than ${MAX_CONFIG_BYTES >> 20} MiB`);
    return buf.toString('utf8', 0, got);
  } finally {
    closeSync(fd);
  }
}

/**
 * The file's text as the INI parser should see it. A UTF-8 byte order mark (Notepad and other Windows editors write one)
 * is dropped: the parser took `\uFEFF[network]` for a key outside any section, so the whole first section was lost (only
 * an "outside a section" warning said so; `offline = true` there went to the network anyway).
 */
function forIni(text: string): string {
  return text.replace(/^\uFEFF/, '').split('\n').map(keepSeparatorsInValue).join('\n');
}

/**
 * A `;` or `#` inside a value, escaped as the INI parser reads it (`\;`): the parser cut an unquoted value at the first
 * one, so `Debian = http://mirror.example/debian;v2/` silently became `http://mirror.example/debian`, and a cache folder
 * named `C#` lost its end. Here a comment starts only at the start of a line or value, or after a space or tab
 * (`timeout = 30 ; seconds`), as in most INI dialects; elsewhere the character is part of the value. A quoted value is
 * left to the parser (JSON), as is one already escaped.
 */
function keepSeparatorsInValue(line: string): string {
  const eq = line.indexOf('=');
  if (eq < 0 || /^\s*[;#[]/.test(line)) return line; // no value, a comment line or a section line
  const value = line.slice(eq + 1);
  if (/^\s*["']/.test(value)) return line;
  return line.slice(0, eq + 1) + value.replace(/(?<=[^\s\\])[;#]/g, '\\$&');
}

/** A key or value as shown in an error: at most 200 characters, so a hostile file still gets a one-line message. */
function clip(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}… (${text.length} characters)` : text;
}

function applyConfig(config: UserConfig, data: Record<string, unknown>, where: string): void {
  const bad = (key: string, value: unknown, problem: string): never => {
    throw new JigdoError(where, `${clip(key)} = ${clip(JSON.stringify(value) ?? String(value))}: ${clip(problem)}`);
  };
  const str = (key: string, value: unknown): string => {
    if (typeof value === 'string' && value.trim() !== '') return value.trim();
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    return bad(key, value, 'expected a single value');
  };
  const known = configKeys();
  for (const [section, body] of Object.entries(data)) {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      config.warnings.push(`${where}: ignored "${clip(section)}" outside a section ([cache], [network] or [mirrors])`);
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
        config.mirrors.set(key, urls.map(mirrorUrl));
        continue;
      }
      const setting = known.get(`${section}\0${key}`);
      if (!setting) {
        config.warnings.push(`${where}: ignored unknown setting ${clip(name)}`);
        continue;
      }
      const parsed = setting.kind.parse(str(name, value), path.dirname(where));
      if (parsed === undefined) bad(name, value, setting.kind.inConfigFile);
      (config as Record<keyof ConfigValues, unknown>)[setting.field] = parsed;
    }
  }
}
