import type { Command } from 'commander';
import { quoted, shown } from '../../format/byte-string.js';
import type { ChecksumKind } from '../../format/checksum.js';
import { UsageError } from '../../format/errors.js';
import { wholeNumber } from '../option-values.js';
import { checkCacheDir, defaultCacheDir } from '../../engine/cache-dir.js';
import { readFilesFrom } from '../../publish/candidates.js';
import { makeTemplate, type MakeTemplateOptions, type MakeTemplateResult } from '../../publish/make-template.js';
import { tidyKilledRuns } from '../../publish/killed-run.js';
import { Progress } from '../../publish/progress.js';
import { MAKE_TEMPLATE_OPTIONS } from '../option-table.js';
import { loadConfig } from '../config.js';
import { logger } from '../options.js';

interface Flags {
  jigdo?: string;
  template?: string;
  label?: string[];
  uri?: string[];
  merge?: string;
  checksum?: string;
  minLength?: string;
  filesFrom?: string;
  bzip2?: boolean;
  gzip?: boolean;
  force?: boolean;
  iso?: boolean;
  cacheDir?: string;
  config?: string;
  quiet?: boolean;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

function pairs(values: string[] | undefined, flag: string, trim: boolean): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of values ?? []) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new UsageError(`${flag} ${v}: expected LABEL=VALUE`);
    out.set(v.slice(0, eq), trim ? v.slice(eq + 1).replace(/\/+$/, '') : v.slice(eq + 1));
  }
  return out;
}

/** IMAGE without a final .iso, plus `ext`, beside the image. */
export function defaultOutput(image: string, ext: string): string {
  return image.replace(/\.iso$/i, '') + ext;
}

function summary(r: MakeTemplateResult): string {
  const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;
  return `make-template: ${r.parts} parts matched (${mb(r.matchedBytes)} of ${mb(r.imageSize)}, ${r.mode === 'generic' ? 'rolling scan' : `${r.mode} directory + rolling scan of the rest`}); template ${r.templateSize} bytes; ${r.candidates} candidate files, ${r.reads} read (the others from the hash index)\n`;
}

export function registerMakeTemplate(program: Command): void {
  const cmd = program
    .command('make-template')
    .description('make a .jigdo and .template from an image and the files it was built from (like jigdo-file make-template)')
    .argument('<image>', 'the image file (an ISO, or any file)')
    .argument('[files...]', 'candidate files and folders (DIR//sub/path names the part sub/path in location DIR)');
  for (const o of MAKE_TEMPLATE_OPTIONS) {
    if (o.flags.startsWith('--label') || o.flags.startsWith('--uri')) cmd.option(o.flags, o.help, collect);
    else cmd.option(o.flags, o.help);
  }
  cmd.action(async (image: string, files: string[], flags: Flags) => {
    const kind = (flags.checksum ?? 'md5').toLowerCase();
    if (kind !== 'md5' && kind !== 'sha256') throw new UsageError(`--checksum ${flags.checksum}: expected md5 or sha256`);
    const minLength = flags.minLength === undefined ? 1024 : wholeNumber(flags.minLength); // digits only: not 0x400 nor 1e3
    if (minLength === undefined || minLength < 256 || minLength > 1024 * 1024) throw new UsageError(`--min-length ${flags.minLength}: expected a whole number from 256 to 1048576`);
    if (flags.bzip2 && flags.gzip) throw new UsageError('--bzip2 and --gzip exclude each other');
    // The cache folder every other command uses (a release engineer's cache on another disk, set once in the file).
    const config = loadConfig(flags.config);
    const warn = logger(false); // (-q keeps warnings: its help says so)
    for (const w of config.warnings) warn(w);
    const cacheDir = flags.cacheDir ?? config.cacheDir ?? defaultCacheDir();
    await checkCacheDir(cacheDir);
    const all = [...files, ...(flags.filesFrom ? await readFilesFrom(flags.filesFrom) : [])];
    const progress = new Progress(flags.quiet === true);
    const options: MakeTemplateOptions = {
      image,
      files: all,
      jigdo: flags.jigdo ?? defaultOutput(image, '.jigdo'),
      template: flags.template ?? defaultOutput(image, '.template'),
      labels: new Map([...pairs(flags.label, '--label', true)].map(([label, dir]) => [dir, label])),
      uris: pairs(flags.uri, '--uri', false),
      merge: flags.merge,
      kind: kind as ChecksumKind,
      minLength,
      compression: flags.bzip2 ? 'bzip2' : 'gzip',
      force: flags.force === true,
      cacheDir,
      iso: flags.iso !== false,
      progress,
      warn: (line) => process.stderr.write(`jigdofs: warning: ${shown(line)}\n`),
    };
    // Once the options are known good: what killed runs left is put right (killed-run.ts), then the new run starts.
    const killed = await tidyKilledRuns(options.jigdo, options.template);
    if (killed.finished) process.stderr.write(`jigdofs: renamed ${quoted(killed.finished)} to ${quoted(options.jigdo)}: a run killed between writing the template and its .jigdo left them apart\n`);
    if (!flags.quiet) for (const file of killed.removed) process.stderr.write(`jigdofs: removed ${quoted(file)}, left by a run that was killed\n`);
    try {
      const r = await makeTemplate(options);
      if (!flags.quiet) process.stdout.write(summary(r));
    } finally {
      progress.stop();
    }
  });
}
