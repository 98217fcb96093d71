import { DEFAULT_CACHE_BYTES } from '../cache/part-cache.js';
import { NETWORK_DEFAULTS } from '../network/network.js';
import { BOOLEAN, PATH, SECONDS_AS_MS, SIZE, count, sizeAtLeast, type ValueKind } from './option-values.js';

/**
 * Every source option, declared once (rclone's OptionsInfo): this table makes commander's options
 * (addSourceOptions), the configuration file's keys and their parsers (loadConfig), the fallbacks to the
 * defaults (sourceOptions) and the README's option table (a unit test keeps README.md equal to
 * `readmeRows()`). The network's defaults stay NETWORK_DEFAULTS in src/network/network.ts, read from here:
 * the network is built without the CLI too (tests, other front ends), and must not import cli/.
 */

/** The settings the configuration file may give, as parsed values. */
export interface ConfigValues {
  cacheDir?: string;
  cacheSize?: number;
  offline?: boolean;
  timeoutMs?: number;
  connections?: number;
  retries?: number;
  rangeSize?: number;
  streamsPerPart?: number;
}

export type ConfigSection = 'cache' | 'network';

/** A setting of the configuration file, with the option (if any) that overrides it. */
export interface ConfigKey {
  section: ConfigSection;
  key: string;
  field: keyof ConfigValues;
  kind: ValueKind<unknown>;
}

export interface OptionInfo {
  /** As commander declares it, e.g. `--cache-size <SIZE>`; absent: a configuration file key only. */
  flags?: string;
  /** The line of `--help`. */
  help: string;
  /** The README's meaning column; absent: not a row of its own (config-only keys, listed with --config). */
  readme?: string;
  /** Repeatable: the values are collected in order. */
  repeatable?: true;
  /** A default commander fills in (and `--help` shows), as the user would type it. */
  commanderDefault?: string;
  config?: ConfigKey;
}

/** 20G, 4M, 1536K, or plain bytes: how a default size is shown. */
export function sizeText(bytes: number): string {
  for (const [unit, mult] of [['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) {
    if (bytes >= mult && bytes % mult === 0) return `${bytes / mult}${unit}`;
  }
  return String(bytes);
}

/** Stands for the configuration file's keys in a README text: they are listed from the rows themselves. */
const CONFIG_KEYS = '{config keys}';
const CACHE_SIZE = `${sizeText(DEFAULT_CACHE_BYTES)}, capped by free space`;

export const SOURCE_OPTIONS: readonly OptionInfo[] = [
  {
    flags: '--local <LABEL=DIR>',
    help: 'a local mirror tree for a label: Label:path is read from DIR/path (repeatable)',
    readme: 'a local mirror tree for a label: `Label:path` in `[Parts]` is read from `DIR/path` (never outside DIR)',
    repeatable: true,
  },
  {
    flags: '--scan <PATH>',
    help: 'a folder (searched recursively), file, jigdo-lite .tmp file or disc drive (/dev/sr0) holding parts (repeatable)',
    readme: "folders (recursive), files, and jigdo-lite `IMG.tmp` files; files are matched by checksum, and only files whose size equals a part's size are hashed; a block device (`/dev/sr0`: the disc in the drive, a USB stick) is read as a disc image",
    repeatable: true,
  },
  {
    flags: '--no-scan-images',
    help: 'do not look into disc images (ISO9660, UDF) found by --scan: take them as plain files',
    readme: 'do not look into old disc images found by `--scan` (by default an ISO9660 or UDF image is listed and its files are candidate parts, read from the image at their extents)',
  },
  {
    flags: '--scan-deep <FILE>',
    help: "search FILE (or a block device) for parts at every 512-byte boundary (by the template's RsyncSum64), e.g. a damaged image (repeatable)",
    readme: "search a file or block device the disc reader does not understand (a corrupt or unknown filesystem, a raw disk or its image file) for parts at every 512-byte boundary, by the template's RsyncSum64 of each part's first KiB, confirmed by checksum",
    repeatable: true,
  },
  {
    flags: '--cache-dir <DIR>',
    help: 'cache directory (default: $XDG_CACHE_HOME/jigdofs)',
    readme: 'cache (hash index of local files, inflated huge template chunks, logs); default `$XDG_CACHE_HOME/jigdofs`',
    config: { section: 'cache', key: 'dir', field: 'cacheDir', kind: PATH },
  },
  {
    flags: '--template <FILE>',
    help: 'use this template file instead of the one the .jigdo names',
    readme: 'use this template instead of the one the .jigdo names',
  },
  {
    flags: '--image <NAME>',
    help: 'which [Image] of the .jigdo to use (default: the first; mount and serve: all)',
    readme: 'which `[Image]` of the .jigdo (default: the first; `mount` and `serve` show them all unless this names one)',
  },
  {
    flags: '--memory <SIZE>',
    help: 'memory for template data and read-ahead, e.g. 256M',
    readme: 'memory for decompressed template data and read-ahead (default 128M)',
    commanderDefault: '128M',
  },
  {
    flags: '--mirror <LABEL=URL>',
    help: "a mirror for a label, tried before the .jigdo's own servers (repeatable, like jigdo-lite --uri)",
    readme: "a mirror for a label, tried before the .jigdo's own servers (repeatable; like jigdo-lite's `--uri`)",
    repeatable: true,
  },
  {
    flags: '--offline',
    help: 'never use the network (local sources and the cache only)',
    readme: 'never touch the network: local sources and the disk cache only',
    config: { section: 'network', key: 'offline', field: 'offline', kind: BOOLEAN },
  },
  {
    flags: '--no-offline',
    help: 'use the network even if the configuration file says offline',
    readme: 'use the network even if the configuration file says `offline = true`',
  },
  {
    flags: '--cache-size <SIZE>',
    help: `disk cache limit, least recently used parts go first (default: ${CACHE_SIZE})`,
    readme: `disk cache limit; least recently used parts, templates, template spill files and the partial parts an interrupted run left are evicted (default ${CACHE_SIZE})`,
    config: { section: 'cache', key: 'size', field: 'cacheSize', kind: SIZE },
  },
  {
    flags: '--timeout <SECONDS>',
    help: `seconds without data (or under 1 KiB/s for that long) before a mirror counts as stalled (default: ${NETWORK_DEFAULTS.timeoutMs / 1000})`,
    readme: `a mirror silent this long, or sending under 1 KiB/s over that long, fails over (default ${NETWORK_DEFAULTS.timeoutMs / 1000})`,
    config: { section: 'network', key: 'timeout', field: 'timeoutMs', kind: SECONDS_AS_MS },
  },
  {
    flags: '--connections <N>',
    help: `parallel HTTP requests (default: ${NETWORK_DEFAULTS.connections})`,
    readme: `parallel HTTP requests (default ${NETWORK_DEFAULTS.connections})`,
    config: { section: 'network', key: 'connections', field: 'connections', kind: count(1) },
  },
  {
    flags: '--retries <N>',
    help: `extra rounds over all mirrors after each one failed (default: ${NETWORK_DEFAULTS.retries})`,
    readme: `extra rounds over all mirrors after each one failed (default ${NETWORK_DEFAULTS.retries})`,
    config: { section: 'network', key: 'retries', field: 'retries', kind: count(0) },
  },
  {
    help: `parts larger than this are fetched as parallel ranges of about this size when a read waits for them (not ahead of a sequential reader) (default ${sizeText(NETWORK_DEFAULTS.rangeSize)}, at least 64K)`,
    config: { section: 'network', key: 'range-size', field: 'rangeSize', kind: sizeAtLeast(64 * 1024) },
  },
  {
    help: `parallel range requests per part (default ${NETWORK_DEFAULTS.streamsPerPart})`,
    config: { section: 'network', key: 'streams-per-part', field: 'streamsPerPart', kind: count(1) },
  },
  {
    flags: '--config <FILE>',
    help: 'configuration file (default: $XDG_CONFIG_HOME/jigdofs/config.ini)',
    readme: `defaults for the options above that have a key in it (default \`$XDG_CONFIG_HOME/jigdofs/config.ini\`, INI: ${CONFIG_KEYS}, \`[mirrors] Label = URL\`; see below)`,
  },
  {
    flags: '-q, --quiet',
    help: 'print only errors',
    readme: 'print only errors',
  },
];

/** The configuration file's settings by section and key. */
export function configKeys(): Map<string, ConfigKey> {
  const out = new Map<string, ConfigKey>();
  for (const o of SOURCE_OPTIONS) if (o.config) out.set(`${o.config.section}\0${o.config.key}`, o.config);
  return out;
}

/** `[cache] dir size`, `[network] offline timeout ...`: the keys as the README lists them, from the rows. */
function configKeysText(): string {
  const sections = new Map<ConfigSection, string[]>();
  for (const { config } of SOURCE_OPTIONS) if (config) sections.set(config.section, [...(sections.get(config.section) ?? []), config.key]);
  return [...sections].map(([s, keys]) => `\`[${s}] ${keys.join(' ')}\``).join(', ');
}

/** The README's option table, one `| option | meaning |` line per option that has a row. */
export function readmeRows(): string[] {
  const keys = configKeysText();
  return SOURCE_OPTIONS.filter((o) => o.flags && o.readme).map((o) => `| \`${o.flags!.replace(/<([^>]+)>/g, '$1')}\` | ${o.readme!.replace(CONFIG_KEYS, keys)} |`);
}

/** make-template's own options (jigdo-file's names and meanings; issue 9), as commander declares them. */
export const MAKE_TEMPLATE_OPTIONS: ReadonlyArray<{ flags: string; help: string }> = [
  { flags: '-j, --jigdo <FILE>', help: 'the .jigdo to write (default: IMAGE without .iso, plus .jigdo)' },
  { flags: '-t, --template <FILE>', help: 'the .template to write (default: IMAGE without .iso, plus .template)' },
  { flags: '--label <LABEL=DIR>', help: 'name the location DIR (as given before //) LABEL in [Servers] (repeatable)' },
  { flags: '--uri <LABEL=URI>', help: 'the URI of a --label in [Servers] instead of file:DIR/ (repeatable)' },
  { flags: '--merge <FILE>', help: 'start from this .jigdo: keep its [Image] texts, [Servers] and comments' },
  { flags: '-C, --checksum <KIND>', help: 'md5 (Version=1.2, the default) or sha256 (Version=2.0)' },
  { flags: '--min-length <N>', help: 'smallest file to match, and the rolling block length (default 1024, at least 256)' },
  { flags: '-T, --files-from <FILE>', help: 'read more candidate names from FILE, one a line (- = stdin)' },
  { flags: '--bzip2', help: 'compress the template data with bzip2 (default gzip -9)' },
  { flags: '--gzip', help: 'compress the template data with gzip -9 (the default)' },
  { flags: '--force', help: 'overwrite existing output files' },
  { flags: '--no-iso', help: 'never read the image as a disc: scan it all with the rolling checksum' },
  { flags: '--cache-dir <DIR>', help: "where the hash index of candidate files lives (default: the configuration file's [cache] dir, else $XDG_CACHE_HOME/jigdofs)" },
  { flags: '--config <FILE>', help: 'configuration file, for its [cache] dir (default: $XDG_CONFIG_HOME/jigdofs/config.ini)' },
  { flags: '-q, --quiet', help: 'no progress, no summary; only warnings and errors' },
];
