import { existsSync } from 'node:fs';
import { UsageError } from '../format/errors.js';
import { SOURCE_OPTIONS } from './option-table.js';

/**
 * How mount(8) calls a filesystem helper (`/sbin/mount.fuse.jigdofs SOURCE TARGET [-sfnv] [-o OPTIONS] [-t TYPE]`)
 * for an /etc/fstab line or `mount -t fuse.jigdofs`, turned into the arguments of `jigdofs mount`.
 */
export interface HelperCall {
  source: string;
  mountpoint: string;
  /** The `jigdofs mount` options the `-o` list stands for, in order. */
  flags: string[];
  /** `-f`: mount(8)'s "fake" run: do everything but mount. */
  fake: boolean;
}

/**
 * Options of mount(8), systemd and FUSE that mean nothing to jigdofs: the mount is read-only, nosuid and
 * nodev whatever they say, and `auto`/`user`/`nofail`/`x-systemd.*` are read by mount(8) and systemd.
 */
const IGNORED = new Set([
  'defaults', 'ro', 'rw', 'auto', 'noauto', 'user', 'users', 'nouser', 'owner', 'group', 'nofail', '_netdev',
  'exec', 'noexec', 'suid', 'nosuid', 'dev', 'nodev', 'sync', 'async', 'atime', 'noatime', 'diratime', 'nodiratime',
  'relatime', 'norelatime', 'strictatime', 'nostrictatime', 'lazytime', 'nolazytime', 'silent', 'loud', 'iversion',
  'noiversion', 'mand', 'nomand',
]);
const IGNORED_PREFIX = /^(x-|comment=)/i;

/** The options `jigdofs mount` takes, by long name, and whether each needs a value. */
function mountOptions(): Map<string, boolean> {
  const out = new Map<string, boolean>([['allow-other', false], ['direct-io', false], ['log-file', true]]);
  for (const o of SOURCE_OPTIONS) {
    const m = o.flags && /--([a-z-]+)( <)?/.exec(o.flags);
    if (m && m[1] !== 'image') out.set(m[1]!, m[2] !== undefined);
  }
  return out;
}

/**
 * The items of a mount option list, split at the commas outside double quotes, as libmount splits them: a value with a
 * comma in it is quoted (`scan="/srv/old,cds"`), and mount(8) passes the quotes on to the helper (measured: util-linux
 * 2.38 hands `-o ro,scan="/a,b"` to mount.fuse.TYPE). The quotes are not part of any value, and libmount has no escape
 * for a quote inside one.
 */
function optionItems(list: string): string[] {
  const items = [''];
  let quoted = false;
  for (const ch of list) {
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) items.push('');
    else items[items.length - 1] += ch;
  }
  if (quoted) throw new UsageError(`mount options "${list}": a double quote is not closed`);
  return items;
}

/**
 * `scan=/srv/old-cds,local=Debian=/srv/mirror,allow_other,offline` → `--scan /srv/old-cds --local
 * Debian=/srv/mirror --allow-other --offline`. A name may use `_` for `-` (FUSE's own style); the value is
 * everything after the first `=`. An option jigdofs does not know is a usage error naming it, or with `sloppy`
 * (mount's `-s`: "tolerate sloppy mount options") left out with a warning.
 */
export function fstabOptionsToFlags(list: string, opts: { sloppy?: boolean; warn?: (line: string) => void } = {}): string[] {
  const known = mountOptions();
  const flags: string[] = [];
  for (const item of optionItems(list)) {
    if (item === '' || IGNORED.has(item) || IGNORED_PREFIX.test(item)) continue;
    const eq = item.indexOf('=');
    const name = (eq < 0 ? item : item.slice(0, eq)).replace(/_/g, '-');
    const needsValue = known.get(name);
    if (needsValue === undefined && opts.sloppy) {
      opts.warn?.(`mount option "${item}" is not a jigdofs mount option: left out (-s)`);
      continue;
    }
    if (needsValue === undefined) {
      throw new UsageError(`mount option "${item}" is not a jigdofs mount option (known: ${[...known.keys()].join(', ')})`);
    }
    if (needsValue && eq < 0) throw new UsageError(`mount option "${name}" needs a value (${name}=...)`);
    if (!needsValue && eq >= 0) throw new UsageError(`mount option "${name}" takes no value`);
    flags.push(`--${name}`, ...(needsValue ? [item.slice(eq + 1)] : []));
  }
  return flags;
}

/** Parses the helper's command line; a wrong one is a UsageError. */
export function parseHelperArgs(argv: string[], warn?: (line: string) => void): HelperCall {
  const positional: string[] = [];
  const lists: string[] = [];
  let fake = false;
  let sloppy = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-o' || a === '-t' || a === '-N') {
      const value = argv[++i];
      if (value === undefined) throw new UsageError(`${a} needs a value`);
      if (a === '-o') lists.push(value);
    } else if (a.startsWith('-o') && a.length > 2) lists.push(a.slice(2));
    else if (/^-[sfnvrw]+$/.test(a)) {
      fake ||= a.includes('f');
      sloppy ||= a.includes('s');
    }
    else if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown helper option ${a}`);
    else positional.push(a);
  }
  if (positional.length !== 2) {
    throw new UsageError('usage: mount.fuse.jigdofs JIGDO MOUNTPOINT [-o OPTIONS] (as mount(8) calls it for type fuse.jigdofs)');
  }
  const flags = lists.flatMap((list) => fstabOptionsToFlags(list, { sloppy, warn }));
  return { source: positional[0]!, mountpoint: positional[1]!, flags, fake };
}

/**
 * fuse's old fstab syntax, `jigdofs#/srv/x.jigdo /mnt/img fuse ro,scan=DIR 0 0`: mount.fuse(8) of fuse3 splits
 * the source at `#` and runs `jigdofs /srv/x.jigdo /mnt/img -o ro,scan=DIR,dev,suid` (measured: docs/fstab.md).
 * When our arguments start with two words, the first no command of ours, and either options follow (`-o`: mount.fuse
 * passes them) or the first names a file or a URL, this is that call: the `jigdofs mount` arguments it stands for (or
 * undefined for a `-f` fake run); otherwise null, and a mistyped command (`jigdofs stauts /mnt`) is an unknown
 * command, with commander's suggestion, not a mount of a file named `stauts`.
 */
export function legacyFuseCall(args: string[], commands: readonly string[]): { argv: string[] | undefined } | null {
  const [first, second] = args;
  if (first === undefined || second === undefined || first.startsWith('-') || second.startsWith('-') || commands.includes(first)) return null;
  if (!args.some((a) => a === '-o' || a.startsWith('-o')) && !/^https?:\/\//i.test(first) && !existsSync(first)) return null;
  let call: HelperCall;
  try {
    call = parseHelperArgs(args, (line) => process.stderr.write(`jigdofs: ${line}\n`));
  } catch (err) {
    throw new UsageError(`"${first}" is not a command, nor a mount.fuse call (jigdofs JIGDO MOUNTPOINT -o OPTIONS): ${(err as Error).message}`);
  }
  return { argv: call.fake ? undefined : ['mount', call.source, call.mountpoint, ...call.flags] };
}
