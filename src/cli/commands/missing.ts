import { encodeBytes } from '../../format/byte-string.js';
import path from 'node:path';
import type { Command } from 'commander';
import { imageFileName } from '../../engine/session.js';
import { findMissing } from '../../build/make-image.js';
import { LabelMap, expandPart } from '../../format/resolve.js';
import { addSourceOptions, type SourceFlags } from '../options.js';
import { withSession } from '../session.js';
import { grouped } from '../../util/grouped.js';

/** As jigdo-file prints a candidate: `file:` stripped to a local path, everything else verbatim. */
const printable = (text: string): string => text.replace(/^file:/i, '');

export function registerMissing(program: Command): void {
  addSourceOptions(
    program
      .command('missing')
      .description('list the parts no local source has, with their candidate URLs (like jigdo-file print-missing-all)')
      .argument('<jigdo>', '.jigdo file or http(s) URL')
      .option('--first', 'print only the first candidate of each part (like jigdo-file print-missing)')
      .option('--json', 'print JSON for scripts'),
  ).action(async (jigdoArg: string, flags: SourceFlags & { first?: boolean; json?: boolean }) => {
    const result = await withSession(jigdoArg, flags, async (s, { network }) => {
      const missing = await findMissing(s);
      // jigdo-file sorts by the raw checksum bytes (a std::set of sums), not by image order.
      const sorted = missing
        .map((key) => s.layout.parts.get(key)!)
        .sort((a, b) => Buffer.compare(a.sum, b.sum));
      // `--mirror` and the configuration's [mirrors] first, as make-image and mount try them (Network.providers).
      const labels = new LabelMap(s.jigdo.servers, network?.extraServers(s.jigdo.location));
      const parts = sorted.map((p) => ({ key: p.key, length: p.length, candidates: expandPart(s.jigdo, labels, p.key).map((e) => printable(e.text)) }));
      const fromImages = { lines: s.local.images.summaryLines(), list: s.local.images.summary() };
      const all = [...s.layout.parts.values()].filter((p) => p.length > 0);
      return { total: all.length, totalBytes: all.reduce((n, p) => n + p.length, 0), parts, fromImages };
    }, { fetchParts: false, output: (image) => path.resolve(imageFileName(image)) }); // its IMG.tmp, as print-missing reads it
    // What is left to download, as desync's `info --seed` tells (the parts' own sizes: no HTTP overhead counted).
    const missingBytes = result.parts.reduce((n, p) => n + p.length, 0);
    if (flags.json) {
      // --first: one candidate each here too (it was taken by the text alone).
      const parts = flags.first ? result.parts.map((p) => ({ ...p, candidates: p.candidates.slice(0, 1) })) : result.parts;
      const json = { missing: result.parts.length, total: result.total, missingBytes, totalBytes: result.totalBytes, fromImages: result.fromImages.list, parts };
      process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    } else if (flags.first) {
      for (const p of result.parts) process.stdout.write(encodeBytes(`${p.candidates[0]}\n`));
    } else {
      // The exact bytes, as jigdo-file prints them (a Latin-1 name stays one byte, for wget or a script).
      for (const p of result.parts) process.stdout.write(encodeBytes(`${p.candidates.join('\n')}\n\n`));
    }
    if (!flags.quiet) for (const line of result.fromImages.lines) process.stderr.write(`jigdofs: ${line}\n`);
    if (!flags.quiet) {
      process.stderr.write(`jigdofs: ${result.parts.length} of ${result.total} parts missing, ${grouped(missingBytes)} of ${grouped(result.totalBytes)} bytes\n`);
    }
  });
}
