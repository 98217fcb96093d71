import { homedir } from 'node:os';
import path from 'node:path';

/**
 * An XDG base folder: `$XDG_CACHE_HOME`, `$XDG_CONFIG_HOME` when set to an absolute path, else `~/` + `fallback`. A
 * relative one is ignored, as the XDG Base Directory spec says: it was taken from the current folder, so each folder a
 * command ran in had its own cache.
 */
export function xdgDir(variable: 'XDG_CACHE_HOME' | 'XDG_CONFIG_HOME', fallback: string): string {
  const given = process.env[variable];
  return given && path.isAbsolute(given) ? given : path.join(homedir(), fallback);
}
