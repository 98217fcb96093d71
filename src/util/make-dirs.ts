import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * Directories we make are private (0700) unless asked otherwise: every caller makes folders of the cache
 * (parts, templates, locks, tmp, inflated, logs), and a second local user must not learn what we fetched
 * or which local files we hashed. Folders that already exist are left as they are (the user chose them).
 */
export const PRIVATE_DIR_MODE = 0o700;

/**
 * `mkdir -p` that always ends. Node's own `mkdir(…, { recursive: true })` never returns where mkdir
 * answers ENOENT though the parent exists (under /proc, for one): a bad --cache-dir must be an error,
 * not a hang.
 */
export async function makeDirs(dir: string, mode = PRIVATE_DIR_MODE): Promise<void> {
  try {
    await mkdir(dir, { mode });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if ((await stat(dir)).isDirectory()) return;
      throw new Error(`${dir}: not a folder (a file is in the way: remove or rename it)`);
    }
    if (code !== 'ENOENT') throw err;
  }
  const parent = path.dirname(dir);
  if (parent === dir) throw new Error(`${dir}: cannot create this directory`);
  await makeDirs(parent, mode);
  try {
    await mkdir(dir, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // made by someone else meanwhile: fine
  }
}

/**
 * The folders one owner (a cache) made: each is made once (makeDirs), not once per file created in it, and made
 * again when it was removed meanwhile (the op then fails with ENOENT).
 */
export class MadeDirs {
  private readonly made = new Set<string>();

  /** Runs `op`, which creates something in `dir`, making `dir` first (again, if it was removed meanwhile). */
  async inDir<T>(dir: string, op: () => Promise<T>): Promise<T> {
    if (!this.made.has(dir)) {
      await makeDirs(dir);
      this.made.add(dir);
    }
    try {
      return await op();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await makeDirs(dir);
      return op();
    }
  }
}
