import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** /proc/mounts escapes spaces and such as octal (\040). */
const unescapeMount = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The filesystem type mounted at `mnt` (e.g. `fuse.jigdofs`), or undefined. */
export async function mountedType(mnt: string): Promise<string | undefined> {
  const text = await readFile('/proc/mounts', 'utf8').catch(() => '');
  let type: string | undefined;
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields.length > 2 && unescapeMount(fields[1]!) === mnt) type = fields[2]; // the last mount wins
  }
  return type;
}

/** True when `mnt` is a FUSE mount whose daemon is gone ("Transport endpoint is not connected"). */
export async function isStale(mnt: string): Promise<boolean> {
  try {
    await stat(mnt);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOTCONN';
  }
}

/** fusermount -u (or -uz: lazy, for stale or busy mounts). */
export async function fusermountUnmount(mnt: string, lazy: boolean): Promise<void> {
  const args = [lazy ? '-uz' : '-u', mnt];
  for (const bin of ['fusermount', 'fusermount3']) {
    try {
      await run(bin, args);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      const stderr = String((err as { stderr?: string }).stderr ?? '').trim();
      throw new Error(stderr || (err as Error).message);
    }
  }
  throw new Error('fusermount not found (apt-get install fuse3)');
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
