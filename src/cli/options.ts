import { Option, type Command } from 'commander';
import { UsageError } from '../format/errors.js';
import { defaultCacheDir, type SourceOptions } from '../engine/session.js';
import type { LocalTree } from '../sources/local-sources.js';
import { Network, NETWORK_DEFAULTS } from '../network/network.js';
import { setRemoteLoader } from '../engine/jigdo-loader.js';
import { loadConfig, mirrorUrlProblem, sizeOf } from './config.js';

/** The raw source options as commander hands them over. */
export interface SourceFlags {
  local: string[];
  scan: string[];
  cacheDir?: string;
  template?: string;
  image?: string;
  memory: string;
  quiet?: boolean;
  mirror?: string[];
  offline?: boolean;
  cacheSize?: string;
  timeout?: string;
  connections?: string;
  retries?: string;
  config?: string;
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
    .option('--mirror <LABEL=URL>', "a mirror for a label, tried before the .jigdo's own servers (repeatable, like jigdo-lite --uri)", collect, [])
    .option('--offline', 'never use the network (local sources and the cache only)')
    .option('--no-offline', 'use the network even if the configuration file says offline')
    .option('--cache-size <SIZE>', 'disk cache limit, least recently used parts go first (default: 20G, capped by free space)')
    .option('--timeout <SECONDS>', `seconds without data (or under 1 KiB/s for that long) before a mirror counts as stalled (default: ${NETWORK_DEFAULTS.timeoutMs / 1000})`)
    .option('--connections <N>', `parallel HTTP requests (default: ${NETWORK_DEFAULTS.connections})`)
    .option('--retries <N>', `extra rounds over all mirrors after each one failed (default: ${NETWORK_DEFAULTS.retries})`)
    .option('--config <FILE>', 'configuration file (default: $XDG_CONFIG_HOME/jigdofs/config.ini)')
    .option('-q, --quiet', 'print only errors');
}

/** `--mirror LABEL=URL` values by label, in order. */
export function parseMirrors(values: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const text of values) {
    const eq = text.indexOf('=');
    if (eq <= 0) throw new UsageError(`--mirror ${text}: expected LABEL=URL`);
    const url = text.slice(eq + 1);
    const problem = mirrorUrlProblem(url);
    if (problem) throw new UsageError(`--mirror ${text}: ${problem}`);
    const label = text.slice(0, eq);
    out.set(label, [...(out.get(label) ?? []), url]);
  }
  return out;
}

function parseCount(text: string, what: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${what}: "${text}" is not a whole number of at least ${min}`);
  return n;
}

/** "64M", "1.5G", "4096", "512k" → bytes, or a usage error naming the option. */
export function parseSize(text: string, what: string): number {
  const bytes = sizeOf(text);
  if (bytes === undefined) throw new UsageError(`${what}: "${text}" is not a size (examples: 512M, 2G, 1048576)`);
  return bytes;
}

export function parseLocalTree(text: string): LocalTree {
  const eq = text.indexOf('=');
  if (eq <= 0 || eq === text.length - 1) throw new UsageError(`--local ${text}: expected LABEL=DIR`);
  return { label: text.slice(0, eq), dir: text.slice(eq + 1) };
}

export function logger(quiet: boolean | undefined): (line: string) => void {
  return quiet ? () => undefined : (line) => process.stderr.write(`jigdofs: ${line}\n`);
}

/**
 * The SourceOptions of a command: command-line flags over the user configuration file. Wires the
 * network (disk cache and mirrors as part providers, remote .jigdo/[Include]/template loading) unless
 * --offline; with `fetchParts: false` parts come from local sources and the cache only (`missing`).
 */
export function sourceOptions(flags: SourceFlags, use: { fetchParts?: boolean } = {}): SourceOptions {
  const log = logger(flags.quiet);
  const config = loadConfig(flags.config);
  for (const w of config.warnings) log(w);
  const cacheDir = flags.cacheDir ?? config.cacheDir ?? defaultCacheDir();
  const timeout = flags.timeout === undefined ? undefined : Number(flags.timeout);
  if (timeout !== undefined && !(timeout > 0 && timeout <= 3600)) throw new UsageError(`--timeout: "${flags.timeout}" is not a number of seconds (more than 0, at most 3600)`);
  const mirrors = new Map([...config.mirrors, ...parseMirrors(flags.mirror ?? [])]);
  const network = new Network({
    offline: flags.offline ?? config.offline ?? false,
    mirrors,
    cacheDir,
    cacheSize: flags.cacheSize !== undefined ? parseSize(flags.cacheSize, '--cache-size') : config.cacheSize,
    timeoutMs: timeout !== undefined ? Math.round(timeout * 1000) : (config.timeoutMs ?? NETWORK_DEFAULTS.timeoutMs),
    connections: flags.connections !== undefined ? parseCount(flags.connections, '--connections', 1) : (config.connections ?? NETWORK_DEFAULTS.connections),
    retries: flags.retries !== undefined ? parseCount(flags.retries, '--retries', 0) : (config.retries ?? NETWORK_DEFAULTS.retries),
    rangeSize: config.rangeSize ?? NETWORK_DEFAULTS.rangeSize,
    streamsPerPart: config.streamsPerPart ?? NETWORK_DEFAULTS.streamsPerPart,
    log,
  });
  setRemoteLoader(network.http ? (url) => network.loadRemote(url) : undefined);
  return {
    local: flags.local.map(parseLocalTree),
    scan: flags.scan,
    cacheDir,
    template: flags.template,
    memory: parseSize(flags.memory, '--memory'),
    log,
    network,
    extraProviders: (ctx) => network.providers(ctx, use.fetchParts ?? true),
    fetchTemplate: (loc, image) => network.fetchTemplate(loc, image),
  };
}
