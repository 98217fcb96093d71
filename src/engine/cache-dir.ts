import path from 'node:path';
import { JigdoError, errorMessage } from '../format/errors.js';
import { makeDirs } from '../util/make-dirs.js';
import { xdgDir } from '../util/xdg-dir.js';

/** Where the cache lives unless `--cache-dir` or the configuration file says otherwise. */
export function defaultCacheDir(): string {
  return path.join(xdgDir('XDG_CACHE_HOME', '.cache'), 'jigdofs');
}

/**
 * The cache directory exists (made if need be); otherwise one clear error. A read-only one is accepted:
 * lookups work, and what cannot be stored says so where it happens.
 */
export async function checkCacheDir(dir: string): Promise<void> {
  try {
    await makeDirs(dir);
  } catch (err) {
    throw new JigdoError(dir, `cannot be used as the cache directory: ${errorMessage(err)}`);
  }
}
