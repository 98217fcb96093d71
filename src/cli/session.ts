import { statSync } from 'node:fs';
import type { JigdoFile, JigdoImage } from '../format/jigdo.js';
import { fsPath } from '../format/byte-string.js';
import { loadJigdo, openImage, selectImage, type ImageSession, type SourceOptions } from '../engine/session.js';
import { sourcePathProblems, sourceOptions, type SourceFlags } from './options.js';
import { unusedLabels } from './unused-labels.js';

/** What a command's session is opened with besides its flags. */
export interface SessionUse {
  fetchParts?: boolean;
  warmPool?: boolean;
  keepDownloads?: boolean;
  /**
   * The image file the command is about (make-image's output, `missing`'s image name): its `.tmp`, the unfinished
   * image an interrupted jigdo-lite left there, is scanned as `--scan` would (spec §6.2: jigdo-file reads it too).
   */
  output?: (image: JigdoImage) => string | undefined;
}

/**
 * Opens the image a command works on, runs `work`, and always closes it. `fetchParts: false` keeps parts
 * off the network (local sources and the disk cache only), for commands that report what is missing.
 * The command's pool and network are made once (sourceOptions) and ended here after the session; `warmPool`
 * starts the pool's first thread at once, for a command that hashes as soon as it has opened the image.
 */
export async function withSession<T>(
  jigdoArg: string,
  flags: SourceFlags,
  work: (s: ImageSession, opts: SourceOptions & { unfinished?: string }) => Promise<T>,
  use: SessionUse = {},
): Promise<T> {
  const opts = sourceOptions(flags, use);
  for (const line of await sourcePathProblems(flags, false)) opts.log(line); // (a --scan path not there: the scan says so itself)
  if (use.warmPool) opts.pool?.warm(); // its first thread starts while the .jigdo and the template are read
  const jigdo = await loadCommandJigdo(jigdoArg, opts);
  for (const line of unusedLabels(jigdo, flags)) opts.log(line);
  const image = selectImage(jigdo, flags.image);
  const unfinished = unfinishedImage(use.output?.(image));
  const session = await openImage(jigdo, image, unfinished ? { ...opts, scan: [...opts.scan, unfinished] } : opts);
  try {
    return await work(session, { ...opts, unfinished });
  } finally {
    await session.close();
    await endCommand(opts);
  }
}

/**
 * The .jigdo a command works on, read with the command's own remote loader (so a URL works in every
 * command), its warnings logged with `log`.
 */
export async function loadCommandJigdo(arg: string, opts: SourceOptions, log = opts.log): Promise<JigdoFile> {
  const jigdo = await loadJigdo(arg, opts.loadRemote);
  for (const w of jigdo.warnings) log(w);
  return jigdo;
}

/** Ends what sourceOptions made for a command: the network (it trims the disk cache to its limit), then the worker pool. */
export async function endCommand(opts: SourceOptions): Promise<void> {
  await opts.network?.close();
  await opts.pool?.close();
}

/** `OUTPUT.tmp` when it is a regular file (jigdo-lite's unfinished image is one; a folder or a FIFO of that name is not). */
function unfinishedImage(output: string | undefined): string | undefined {
  if (output === undefined) return undefined;
  const tmp = `${output}.tmp`;
  try {
    return statSync(fsPath(tmp)).isFile() ? tmp : undefined;
  } catch {
    return undefined;
  }
}
