import type { Command } from 'commander';
import { shown } from '../../format/byte-string.js';
import { MAX_BAD, verifyImage } from '../../build/verify.js';
import { addSourceOptions, type SourceFlags } from '../options.js';
import { withSession } from '../session.js';

export function registerVerify(program: Command): void {
  addSourceOptions(
    program
      .command('verify')
      .description('check an image file against the template: its checksum, and which regions are wrong')
      .argument('<jigdo>', '.jigdo file or http(s) URL')
      .argument('<image>', 'the image file to check')
      .option('--json', 'print JSON for scripts'),
  ).action(async (jigdoArg: string, imageFile: string, flags: SourceFlags & { json?: boolean }) => {
    const r = await withSession(jigdoArg, flags, (s) => verifyImage(s, imageFile));
    if (flags.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    else if (r.ok) process.stdout.write(`OK: ${imageFile}: checksum matches, image is good (${r.checksum})${r.device ? `; the device's first ${r.expectedSize} bytes` : ''}\n`);
    else {
      const lines = [
        r.readToEnd
          ? `FAILED: ${imageFile}: ${r.size !== r.expectedSize ? `size ${r.size}, expected ${r.expectedSize}; ` : ''}checksum ${r.checksum}, expected ${r.expected}`
          : `FAILED: ${imageFile}: more than the image's ${r.expectedSize} bytes (not a file: read no further than one byte past the image)`,
      ];
      if (r.moreBadRegions > 0) lines.push(`  ${(MAX_BAD + r.moreBadRegions).toLocaleString('en-US')} regions are wrong; the first ${MAX_BAD} are listed`);
      for (const b of r.badRegions) {
        const good = b.goodCopy && `; a good copy ${b.goodCopy.insideImage ? 'is inside' : 'is'} ${shown(b.goodCopy.path)}`;
        lines.push(`  bytes ${b.offset}..${b.offset + b.length - 1} (${b.length}): ${b.what}${good ?? ''}`);
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    if (!r.ok) process.exitCode = 1;
  });
}
