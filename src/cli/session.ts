import { loadJigdo, openImage, selectImage, type ImageSession } from '../engine/session.js';
import { sourceOptions, type SourceFlags } from './options.js';

/**
 * Opens the image a command works on, runs `work`, and always closes it. `fetchParts: false` keeps parts
 * off the network (local sources and the disk cache only), for commands that report what is missing.
 * The command's pool and network are made once (sourceOptions) and ended here after the session.
 */
export async function withSession<T>(
  jigdoArg: string,
  flags: SourceFlags,
  work: (s: ImageSession) => Promise<T>,
  use: { fetchParts?: boolean } = {},
): Promise<T> {
  const opts = sourceOptions(flags, use);
  const jigdo = await loadJigdo(jigdoArg, opts.loadRemote);
  for (const w of jigdo.warnings) opts.log(w);
  const session = await openImage(jigdo, selectImage(jigdo, flags.image), opts);
  try {
    return await work(session);
  } finally {
    await session.close();
    await opts.network?.close();
    await opts.pool?.close();
  }
}
