import { loadJigdo, openImage, selectImage, type ImageSession } from '../image/open.js';
import { sourceOptions, type SourceFlags } from './options.js';

/** Opens the image a command works on, runs `work`, and always closes it. */
export async function withSession<T>(jigdoArg: string, flags: SourceFlags, work: (s: ImageSession) => Promise<T>): Promise<T> {
  const opts = sourceOptions(flags);
  const jigdo = await loadJigdo(jigdoArg);
  for (const w of jigdo.warnings) opts.log(w);
  const session = await openImage(jigdo, selectImage(jigdo, flags.image), opts);
  try {
    return await work(session);
  } finally {
    await session.close();
  }
}
