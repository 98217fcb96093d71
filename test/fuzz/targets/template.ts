/**
 * The template (src/format/template.ts: header, DESC, part index) and its raw stream
 * (src/sources/template-data.ts: DATA inflation in memory up to 16 MiB and into a spill file above, BZIP on
 * a worker, each capped at the size its part header claims: gzip and bzip2 bombs). After a clean parse the
 * first and last bytes of every raw-data part (up to 64 parts) are read.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BufferByteSource } from '../../../src/format/bytesource.js';
import { JigdoError } from '../../../src/format/errors.js';
import { parseTemplate } from '../../../src/format/template.js';
import { TemplateData } from '../../../src/sources/template-data.js';
import { WorkerPool } from '../../../src/util/worker-pool.js';
import { isOneLine } from '../target.js';

const dir = mkdtempSync(path.join(tmpdir(), 'jigdofs-fuzz-template-'));
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
let pool: WorkerPool | undefined;
let runs = 0;

const PROBE = 4096;

export default {
  name: 'template',
  async run(input: Buffer): Promise<void> {
    const src = new BufferByteSource('fuzz.template', input);
    const info = await parseTemplate(src);
    pool ??= new WorkerPool(1);
    const data = new TemplateData(src, info, { memoryLimit: 32 << 20, spillDir: path.join(dir, String(runs++)), pool });
    try {
      const target = Buffer.alloc(PROBE);
      for (const chunk of info.chunks.slice(0, 64)) {
        const n = Math.min(PROBE, chunk.uncompressedLength);
        if (n === 0) continue;
        await data.readInto(chunk.rawStart, n, target, 0);
        await data.readInto(chunk.rawStart + chunk.uncompressedLength - n, n, target, 0);
      }
    } finally {
      await data.close();
      rmSync(path.join(dir, String(runs - 1)), { recursive: true, force: true });
    }
  },
  isCleanError(e: unknown): boolean {
    return e instanceof JigdoError && isOneLine(e.message);
  },
  async close(): Promise<void> {
    await pool?.close();
  },
};
