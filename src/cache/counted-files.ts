import type { Stats } from 'node:fs';
import { readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { idleResumeFiles, removeResumeFile, type ClaimLock } from './resume-leftovers.js';
import { FINISHED_SPILL, SPILL_DIR } from './spill-name.js';

/** A file the size limit counts (CacheEviction); `lockName` for a resumable download's leftover (resume-leftovers.ts). */
export interface CountedFile {
  file: string;
  size: number;
  atimeMs: number;
  lockName?: string;
}

/**
 * Every file the limit of the cache `dir` counts, with its size and last use: verified parts and templates,
 * `templates/unverified`, finished spills of huge template chunks (`inflated/ID/`) by the blocks they take (sparse; once
 * kept outside it), and resumable downloads' leftovers no writer holds (resume-leftovers.ts).
 */
export async function countedFiles(dir: string): Promise<CountedFile[]> {
  const out: CountedFile[] = [];
  const walk = async (dir: string, depth: number, counted?: { name: RegExp; size: (st: Stats) => number }): Promise<void> => {
    const names = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const d of names) {
      const full = path.join(dir, d.name);
      if (d.isDirectory() && depth > 0) await walk(full, depth - 1, counted);
      else if (d.isFile() && (!counted || counted.name.test(d.name))) {
        const st = await stat(full).catch(() => undefined);
        if (st) out.push({ file: full, size: counted ? counted.size(st) : st.size, atimeMs: st.atimeMs });
      }
    }
  };
  for (const kind of ['md5', 'sha256']) {
    await walk(path.join(dir, 'parts', kind), 1);
    await walk(path.join(dir, 'templates', kind), 0);
  }
  await walk(path.join(dir, 'templates', 'unverified'), 0, { name: /\.template$/, size: (st) => st.size });
  await walk(path.join(dir, SPILL_DIR), 1, { name: FINISHED_SPILL, size: (st) => st.blocks * 512 });
  out.push(...(await idleResumeFiles(dir)));
  return out;
}

/**
 * Removes a counted file for room; false when it is gone already, or a leftover that a writer took up meanwhile (`claim`:
 * its checksum's lock, taken for the removal).
 */
export function dropCounted(e: CountedFile, claim: ClaimLock): Promise<boolean> {
  if (e.lockName !== undefined) return removeResumeFile(e.file, e.lockName, claim);
  return unlink(e.file).then(() => true, () => false);
}
