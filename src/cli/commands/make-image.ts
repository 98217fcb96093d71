import { oneLine, quoted } from '../../format/byte-string.js';
import path from 'node:path';
import type { Command } from 'commander';
import { makeImage } from '../../build/make-image.js';
import { STANDARD_OUTPUT, streamImage } from '../../build/stream-out.js';
import { removeDeadTemporaries } from '../../util/output-temporary.js';
import { UsageError } from '../../format/errors.js';
import { imageFileName, type ImageSession } from '../../engine/session.js';
import { endBySignal, onEndingSignal } from '../../util/signals.js';
import { addSourceOptions, type SourceFlags } from '../options.js';
import { withSession } from '../session.js';

const MAX_LISTED = 20;

/** A one-line progress display, only when stderr is a terminal. */
function progressLine(enabled: boolean): ((done: number, total: number) => void) | undefined {
  if (!enabled) return undefined;
  let last = 0;
  const start = Date.now();
  return (done, total) => {
    const now = Date.now();
    if (now - last < 200 && done < total) return;
    last = now;
    const mbs = done / 1e6 / Math.max(0.001, (now - start) / 1000);
    process.stderr.write(`\r${((100 * done) / total).toFixed(1)}%  ${(done / 1e6).toFixed(0)} MB  ${mbs.toFixed(0)} MB/s   ${done >= total ? '\n' : ''}`);
  };
}

/**
 * Ctrl-C or a kill: says so in one line, then the process dies of the same signal (a shell loop around us stops as it
 * should; signals.ts), having removed the half-written temporary image (it can be GBs) and the cache's temporary
 * files and locks (exit-leftovers.ts). Parts fetched so far stay in the cache, so a rerun resumes from them. Returns
 * the undo.
 */
function sayInterrupted(output: string): () => void {
  // (What went to standard output is out: it is the rest that is not.)
  const what = output === STANDARD_OUTPUT ? 'not written whole' : 'not written';
  return onEndingSignal((sig) => {
    process.stderr.write(`jigdofs: ${quoted(output)}: interrupted (${sig}): ${what}\n`);
    endBySignal(sig);
  });
}

type MakeImageFlags = SourceFlags & { output?: string; keepParts?: boolean; force?: boolean };

/** The image into a file: a temporary one, renamed into place once its checksum matched (build/make-image.ts). */
async function writeFile(s: ImageSession, output: string, flags: MakeImageFlags) {
  for (const file of await removeDeadTemporaries(output)) if (!flags.quiet) process.stderr.write(`jigdofs: removed ${quoted(file)}, left by a run that was killed\n`);
  const stopInterrupted = sayInterrupted(output);
  const r = await makeImage(s, output, progressLine(!flags.quiet && process.stderr.isTTY === true), stopInterrupted, { force: flags.force === true }).finally(stopInterrupted);
  return { ...r, written: r.size };
}

/** `-o -`: the image in order on standard output (build/stream-out.ts). */
async function streamOut(s: ImageSession, flags: MakeImageFlags) {
  process.stdout.on('error', () => undefined); // (each write's callback reports it: an EPIPE is a line, not a crash)
  const stopInterrupted = sayInterrupted(STANDARD_OUTPUT);
  return await streamImage(s, process.stdout, progressLine(!flags.quiet && process.stderr.isTTY === true)).finally(stopInterrupted);
}

export function registerMakeImage(program: Command): void {
  addSourceOptions(
    program
      .command('make-image')
      .description('write the whole image from the sources, verified against the image checksum')
      .argument('<jigdo>', '.jigdo file or http(s) URL')
      .option('-o, --output <FILE>', 'image file to write (default: the image name in the current directory; - for standard output)')
      .option('--keep-parts', 'keep the parts downloaded in the cache (default: removed once the image is written)')
      .option('--force', 'replace an existing output file (never a device, a pipe, or the .jigdo or template read)'),
  ).action(async (jigdoArg: string, flags: MakeImageFlags) => {
    const toStdout = flags.output === '-';
    // gzip's rule: gigabytes of binary are not for a terminal (said before the template is fetched or a part looked at).
    if (toStdout && process.stdout.isTTY) throw new UsageError('-o -: standard output is a terminal: redirect it, or give a file name');
    await withSession(jigdoArg, flags, async (s, { unfinished }) => {
      const output = toStdout ? STANDARD_OUTPUT : path.resolve(flags.output ?? s.name);
      const t0 = Date.now();
      const r = toStdout ? await streamOut(s, flags) : await writeFile(s, output, flags);
      if (r.missing.length > 0) {
        const lines = r.missing.slice(0, MAX_LISTED).map((key) => {
          const p = s.layout.parts.get(key)!;
          const uri = s.jigdo.parts.get(key)?.[0]?.uri;
          const reason = s.parts.missingReason(key);
          return `  ${key} (${p.length} bytes)${uri ? ` ${oneLine(uri, 200)}` : ''}${reason ? `: ${oneLine(reason, 200)}` : ''}`;
        });
        if (r.missing.length > MAX_LISTED) lines.push(`  ... and ${r.missing.length - MAX_LISTED} more (see: jigdofs missing)`);
        // The output's name is the .jigdo's Filename unless -o names it: escaped for the terminal, like every line.
        const notWritten = toStdout ? `not written whole (it stops after ${r.written} bytes)` : 'not written';
        process.stderr.write(`jigdofs: ${quoted(output)}: ${notWritten}: ${r.missing.length} part(s) missing:\n${lines.join('\n')}\n`);
        process.exitCode = 1;
        return;
      }
      const secs = (Date.now() - t0) / 1000;
      if (!flags.quiet) {
        process.stderr.write(`jigdofs: wrote ${quoted(output)}: ${r.size} bytes, ${s.layout.checksumKind} OK, ${secs.toFixed(1)} s (${(r.size / 1e6 / Math.max(secs, 0.001)).toFixed(0)} MB/s)\n`);
        for (const line of s.local.images.summaryLines()) process.stderr.write(`jigdofs: ${line}\n`);
        // jigdo-file renames it into the image; ours is written apart, so it stays for the user to remove (GBs).
        if (unfinished && s.local.tmpFilesUsed.has(unfinished)) process.stderr.write(`jigdofs: parts were taken from ${quoted(unfinished)}, jigdo-lite's unfinished image: it is no longer needed\n`);
      }
    }, { warmPool: true, keepDownloads: flags.keepParts === true, output: (image) => (toStdout ? undefined : path.resolve(flags.output ?? imageFileName(image))) });
  });
}
