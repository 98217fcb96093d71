import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * `mkdir -p` that always ends. Node's own `mkdir(…, { recursive: true })` never returns where mkdir
 * answers ENOENT though the parent exists (under /proc, for one): a bad --cache-dir must be an error,
 * not a hang.
 */
export async function makeDirs(dir: string): Promise<void> {
  try {
    await mkdir(dir);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if ((await stat(dir)).isDirectory()) return;
      throw err;
    }
    if (code !== 'ENOENT') throw err;
  }
  const parent = path.dirname(dir);
  if (parent === dir) throw new Error(`${dir}: cannot create this directory`);
  await makeDirs(parent);
  try {
    await mkdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // made by someone else meanwhile: fine
  }
}
