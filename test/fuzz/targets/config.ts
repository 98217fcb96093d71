/**
 * The configuration files: the ConfigFile syntax of .jigdo files (src/format/configfile.ts, the line
 * parser and word splitting) and the user's INI config (src/cli/config.ts loadConfig, from a temp file).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { JigdoError } from '../../../src/format/errors.js';
import { parseConfigText, splitWords } from '../../../src/format/configfile.js';
import { loadConfig } from '../../../src/cli/config.js';
import { decodeBytes } from '../../../src/format/byte-string.js';
import { isOneLine } from '../target.js';

const dir = mkdtempSync(path.join(tmpdir(), 'jigdofs-fuzz-config-'));
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

export default {
  name: 'config',
  async run(input: Buffer): Promise<void> {
    const text = decodeBytes(input);
    for (const ev of parseConfigText(text)) {
      if (ev.type === 'entry') splitWords(ev.rawValue);
    }
    const file = path.join(dir, 'config.ini');
    writeFileSync(file, input);
    loadConfig(file);
    await Promise.resolve();
  },
  isCleanError(e: unknown): boolean {
    return e instanceof JigdoError && isOneLine(e.message);
  },
};
