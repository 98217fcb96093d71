/**
 * The .jigdo parser (src/format/jigdo.ts) as loadJigdo runs it: the input written to a temp folder as
 * a.jigdo .. d.jigdo (so `[Include b.jigdo]` makes chains, loops and fan-outs), read plain and gzipped
 * through the real resource loader; then every part's candidates are expanded (label fan-outs, chains).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { JigdoError } from '../../../src/format/errors.js';
import { loadJigdo } from '../../../src/engine/session.js';
import { LabelMap, partCandidates } from '../../../src/format/resolve.js';
import { isOneLine } from '../target.js';

const dir = mkdtempSync(path.join(tmpdir(), 'jigdofs-fuzz-jigdo-'));
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

async function parseAndExpand(file: string): Promise<void> {
  const jigdo = await loadJigdo(file);
  const labels = new LabelMap(jigdo.servers);
  let n = 0;
  for (const key of jigdo.parts.keys()) {
    if (++n > 2000) break;
    partCandidates(jigdo, labels, key);
  }
}

export default {
  name: 'jigdo',
  async run(input: Buffer): Promise<void> {
    for (const name of ['b.jigdo', 'c.jigdo', 'd.jigdo']) await writeFile(path.join(dir, name), input);
    await writeFile(path.join(dir, 'a.jigdo'), input);
    let first: unknown;
    try {
      await parseAndExpand(path.join(dir, 'a.jigdo'));
    } catch (e) {
      first = e;
    }
    await writeFile(path.join(dir, 'a.jigdo'), gzipSync(input));
    await parseAndExpand(path.join(dir, 'a.jigdo'));
    if (first !== undefined) throw first;
  },
  isCleanError(e: unknown): boolean {
    return e instanceof JigdoError && isOneLine(e.message);
  },
};
