import { Option, type Command } from 'commander';
import { UsageError } from '../format/errors.js';
import { defaultCacheDir, type SourceOptions } from '../image/open.js';
import type { LocalTree } from '../sources/local.js';

/** The raw source options as commander hands them over. */
export interface SourceFlags {
  local: string[];
  scan: string[];
  cacheDir?: string;
  template?: string;
  image?: string;
  memory: string;
  quiet?: boolean;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Adds the options every command shares: where parts come from and how much memory to use. */
export function addSourceOptions(cmd: Command): Command {
  return cmd
    .option('--local <LABEL=DIR>', 'a local mirror tree for a label: Label:path is read from DIR/path (repeatable)', collect, [])
    .option('--scan <PATH>', 'a folder (searched recursively), file or jigdo-lite .tmp file holding parts (repeatable)', collect, [])
    .option('--cache-dir <DIR>', 'cache directory (default: $XDG_CACHE_HOME/jigdofs)')
    .option('--template <FILE>', 'use this template file instead of the one the .jigdo names')
    .option('--image <NAME>', 'which [Image] of the .jigdo to use (default: the first)')
    .addOption(new Option('--memory <SIZE>', 'memory for template data and read-ahead, e.g. 256M').default('128M'))
    .option('-q, --quiet', 'print only errors');
}

/** "64M", "1.5G", "4096", "512k" → bytes. */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${what}: "${text}" is not a size (examples: 512M, 2G, 1048576)`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * mult);
}

export function parseLocalTree(text: string): LocalTree {
  const eq = text.indexOf('=');
  if (eq <= 0 || eq === text.length - 1) throw new UsageError(`--local ${text}: expected LABEL=DIR`);
  return { label: text.slice(0, eq), dir: text.slice(eq + 1) };
}

export function logger(quiet: boolean | undefined): (line: string) => void {
  return quiet ? () => undefined : (line) => process.stderr.write(`jigdofs: ${line}\n`);
}

export function sourceOptions(flags: SourceFlags): SourceOptions {
  return {
    local: flags.local.map(parseLocalTree),
    scan: flags.scan,
    cacheDir: flags.cacheDir ?? defaultCacheDir(),
    template: flags.template,
    memory: parseSize(flags.memory, '--memory'),
    log: logger(flags.quiet),
  };
}
