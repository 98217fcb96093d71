import { constants, type Stats } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { fsPath, quoted } from '../format/byte-string.js';
import { Option, type Command } from 'commander';
import { UsageError, errorMessage } from '../format/errors.js';
import { defaultCacheDir } from '../engine/cache-dir.js';
import type { SourceOptions } from '../engine/session.js';
import type { LocalTree } from '../sources/local-sources.js';
import { Network, NETWORK_DEFAULTS, type NetworkOptions } from '../network/network.js';
import { WorkerPool } from '../util/worker-pool.js';
import { valueWithin } from '../util/settle.js';
import { loadConfig, type UserConfig } from './config.js';
import { SOURCE_OPTIONS, type ConfigValues } from './option-table.js';
import { SIZE, fromCommandLine, mirrorUrl, mirrorUrlProblem } from './option-values.js';

/** The raw source options as commander hands them over. */
export interface SourceFlags {
  local: string[];
  scan: string[];
  /** false with --no-scan-images */
  scanImages?: boolean;
  scanDeep?: string[];
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

/** An option's value: never empty (`--scan=` scanned the current folder, `--image=` took the first image). */
function nonEmpty(value: string, option: string): string {
  if (value === '') throw new UsageError(`${option}: "" is empty: give a value`);
  return value;
}

/**
 * Every option of `cmd` that takes a value and has no parser of its own refuses an empty one (nonEmpty): `serve --host=`
 * listened on every interface (`--host "$HOST"` with HOST unset).
 */
export function refuseEmptyValues(cmd: Command): void {
  for (const o of cmd.options) {
    if ((o.required || o.optional) && !o.parseArg) o.argParser((value: string) => nonEmpty(value, o.long ?? o.flags));
  }
}

/** Adds the options every command shares (the option table): where parts come from, memory, network. */
export function addSourceOptions(cmd: Command): Command {
  for (const o of SOURCE_OPTIONS) {
    if (!o.flags) continue;
    const option = new Option(o.flags, o.help);
    const name = option.long ?? o.flags;
    if (o.repeatable) option.argParser((value: string, previous: string[] = []) => [...previous, nonEmpty(value, name)]).default([]);
    else if (option.required || option.optional) option.argParser((value: string) => nonEmpty(value, name));
    if (o.commanderDefault !== undefined) option.default(o.commanderDefault);
    cmd.addOption(option);
  }
  return cmd;
}

/** `--mirror LABEL=URL` values by label, in order. */
function parseMirrors(values: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const text of values) {
    const eq = text.indexOf('=');
    if (eq <= 0) throw new UsageError(`--mirror ${text}: expected LABEL=URL`);
    const url = text.slice(eq + 1);
    const problem = mirrorUrlProblem(url);
    if (problem) throw new UsageError(`--mirror ${text}: ${problem}`);
    const label = text.slice(0, eq);
    out.set(label, [...(out.get(label) ?? []), mirrorUrl(url)]);
  }
  return out;
}

/** How long a source path's look may take before it counts as fine (a hung NFS server, a stopped FUSE daemon). */
const PATH_LOOK_MS = 500;

/**
 * Whether this process may enter the folder (`read`: and list it), by its mode bits: no access(2), which on a file system
 * that stopped answering waits in the kernel on a libuv thread that the process's exit then waits for (a mount's parent
 * never ended; a stat there is answered from the kernel's cache). Asked again with access(2) only when the bits say
 * no, in case an ACL says yes.
 */
async function mayEnter(p: string, st: Stats, read: boolean): Promise<boolean> {
  const uid = process.getuid?.();
  if (uid === undefined || uid === 0) return true;
  const inGroup = st.gid === process.getgid?.() || (process.getgroups?.() ?? []).includes(st.gid);
  const bits = st.uid === uid ? (st.mode >> 6) & 7 : inGroup ? (st.mode >> 3) & 7 : st.mode & 7;
  const need = read ? 5 : 1;
  if ((bits & need) === need) return true;
  return access(fsPath(p), read ? constants.R_OK | constants.X_OK : constants.X_OK).then(() => true, () => false);
}

/**
 * What is wrong with a source path, or undefined: not there (ENOENT, ENOTDIR), not a folder where one is wanted, or not
 * usable (EACCES: every part under it was "not in the cache", its cause unsaid): a --local tree is only entered (its
 * parts are looked up by name), a --scan folder is listed. A look that takes too long says nothing.
 */
function pathProblem(p: string, local: boolean): Promise<string | undefined> {
  const look = (async (): Promise<string | undefined> => {
    const st = await stat(fsPath(p)).catch((err: NodeJS.ErrnoException) => err);
    if (st instanceof Error) return st.code === 'ENOENT' || st.code === 'ENOTDIR' ? (local ? 'no such folder' : 'no such file or folder') : `cannot be read: ${errorMessage(st)}`;
    if (local && !st.isDirectory()) return 'not a folder';
    if (!st.isDirectory()) return undefined; // (a file, a device or a pipe: the scan itself says what it makes of it)
    return (await mayEnter(p, st, !local)) ? undefined : `cannot be read: permission denied (${local ? 'entered' : 'listed'} by this user)`;
  })();
  // Never a synchronous stat: on a hung file system it never returns (a mount with such a --scan never did).
  return valueWithin(look, PATH_LOOK_MS, undefined);
}

/**
 * Warnings for the --local folders (and, with `scan`, the --scan paths) that are not there, not folders, or cannot be
 * read: a typo or a permission kept a source out without a word (--scan's own line went only to a background mount's log).
 */
export async function sourcePathProblems(flags: Pick<SourceFlags, 'local' | 'scan'>, scan: boolean): Promise<string[]> {
  const local = flags.local.map(parseLocalTree).map((t) => ({ path: t.dir, local: true, name: `--local ${t.label}=${t.dir}` }));
  const scans = scan ? flags.scan.map((p) => ({ path: p, local: false, name: `--scan ${p}` })) : [];
  const problems = await Promise.all([...local, ...scans].map((c) => pathProblem(c.path, c.local)));
  return [...local, ...scans].flatMap((c, i) => (problems[i] ? [`${c.name}: ${problems[i]}`] : []));
}

function parseLocalTree(text: string): LocalTree {
  const eq = text.indexOf('=');
  if (eq <= 0 || eq === text.length - 1) throw new UsageError(`--local ${text}: expected LABEL=DIR`);
  return { label: text.slice(0, eq), dir: text.slice(eq + 1) };
}

export function logger(quiet: boolean | undefined): (line: string) => void {
  // One line each, safe for a terminal: non-UTF-8 name bytes as \xNN, and what a terminal acts on escaped (a log line
  // may quote a .jigdo's paths and labels, or a mirror's URL).
  return quiet ? () => undefined : (line) => process.stderr.write(`jigdofs: ${quoted(line)}\n`);
}

/** A command's settings: its flags over the configuration file over the defaults, all checked. */
export interface Settings extends Omit<NetworkOptions, 'hashFile'> {
  local: LocalTree[];
  scan: string[];
  scanImages: boolean;
  scanDeep: string[];
  template?: string;
  memory: number;
}

/**
 * The value of a configuration setting: its command-line option when given (parsed as the table says),
 * else the configuration file's.
 */
function setting<K extends keyof ConfigValues>(field: K, flags: SourceFlags, config: UserConfig): ConfigValues[K] {
  const info = SOURCE_OPTIONS.find((o) => o.config?.field === field)!;
  const name = info.flags?.split(' ')[0];
  const given = name === undefined ? undefined : (flags as unknown as Record<string, unknown>)[attributeName(name)];
  if (typeof given === 'string') return fromCommandLine(info.config!.kind, name!, given) as ConfigValues[K];
  if (typeof given === 'boolean') return given as ConfigValues[K];
  return config[field];
}

/** commander's property name of a long flag: `--cache-size` → `cacheSize`. */
function attributeName(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Checks a command's flags and configuration file, with no side effect but the configuration's warnings
 * (logged): what every command does first, and all that the parent of a background mount does.
 */
export function resolveSettings(flags: SourceFlags): Settings {
  const log = logger(flags.quiet);
  const config = loadConfig(flags.config);
  for (const w of config.warnings) log(w);
  // In this order, the first of several bad values is the one reported (as before the option table).
  const cacheDir = setting('cacheDir', flags, config) ?? defaultCacheDir();
  const timeoutMs = setting('timeoutMs', flags, config) ?? NETWORK_DEFAULTS.timeoutMs;
  const mirrors = new Map([...config.mirrors, ...parseMirrors(flags.mirror ?? [])]);
  const offline = setting('offline', flags, config) ?? false;
  const cacheSize = setting('cacheSize', flags, config);
  const connections = setting('connections', flags, config) ?? NETWORK_DEFAULTS.connections;
  const retries = setting('retries', flags, config) ?? NETWORK_DEFAULTS.retries;
  const rangeSize = setting('rangeSize', flags, config) ?? NETWORK_DEFAULTS.rangeSize;
  const streamsPerPart = setting('streamsPerPart', flags, config) ?? NETWORK_DEFAULTS.streamsPerPart;
  const local = flags.local.map(parseLocalTree);
  const memory = fromCommandLine(SIZE, '--memory', flags.memory);
  const scanImages = flags.scanImages !== false;
  return { log, local, scan: flags.scan, scanImages, scanDeep: flags.scanDeep ?? [], cacheDir, template: flags.template, memory, offline, mirrors, cacheSize, timeoutMs, connections, retries, rangeSize, streamsPerPart };
}

/**
 * The SourceOptions of a command: its settings, and what they build, once per command: the worker pool
 * and the network (disk cache and mirrors as part providers, remote .jigdo/[Include]/template loading;
 * no mirrors with --offline). With `fetchParts: false` parts come from local sources and the cache only
 * (`missing`). `keepDownloads: false`: see NetworkOptions.
 */
export function sourceOptions(flags: SourceFlags, use: { fetchParts?: boolean; keepDownloads?: boolean; timestamps?: boolean } = {}): SourceOptions {
  const settings = resolveSettings(flags);
  const { cacheDir } = settings;
  // A daemon's log: every line stamped, the network's too (a mirror demoted, a template fetched).
  const log = use.timestamps ? (line: string) => settings.log(`${new Date().toISOString()} ${line}`) : settings.log;
  const pool = new WorkerPool();
  const network = new Network({
    offline: settings.offline,
    mirrors: settings.mirrors,
    cacheDir,
    cacheSize: settings.cacheSize,
    timeoutMs: settings.timeoutMs,
    connections: settings.connections,
    retries: settings.retries,
    rangeSize: settings.rangeSize,
    streamsPerPart: settings.streamsPerPart,
    keepDownloads: use.keepDownloads,
    logProgress: use.timestamps,
    log,
    hashFile: (file, kind) => pool.hashFile(file, kind),
    dropPages: (paths) => pool.dropPages(paths),
  });
  return {
    local: settings.local,
    scan: settings.scan,
    scanImages: settings.scanImages,
    scanDeep: settings.scanDeep,
    cacheDir,
    template: settings.template,
    memory: settings.memory,
    log,
    pool,
    network,
    loadRemote: network.http ? (url) => network.loadRemote(url) : undefined,
    extraProviders: (ctx) => network.providers(ctx, use.fetchParts ?? true),
    fetchTemplate: (loc, image, matches) => network.fetchTemplate(loc, image, matches),
    online: network.http !== undefined,
  };
}
