import { percentEncodeComponent } from '../../format/byte-string.js';
import type { Command } from 'commander';
import { UsageError, errorMessage } from '../../format/errors.js';
import { openImage, selectImage, type ImageSession } from '../../engine/session.js';
import { endCommand, loadCommandJigdo } from '../session.js';
import { runServer } from '../../http/server.js';
import { servedImages } from '../../http/served-image.js';
import { addSourceOptions, sourceOptions, type SourceFlags } from '../options.js';
import { wholeNumber } from '../option-values.js';

interface ServeFlags extends SourceFlags {
  host: string;
  port: string;
  maxClients: string;
  drainTimeout: string;
  sendTimeout: string;
}

/** A whole number in decimal digits (wholeNumber: `--port ''` was port 0, `--port 0x1f90` 8080) from min to max. */
function parseWhole(text: string, what: string, min: number, max: number): number {
  const n = wholeNumber(text);
  if (n === undefined || n < min || n > max) throw new UsageError(`${what}: "${text}" is not a whole number from ${min} to ${max}`);
  return n;
}

/** Every image of every .jigdo (or the one --image names in each); what was opened is closed when one fails. */
async function openAll(jigdoArgs: string[], flags: ServeFlags, opts: ReturnType<typeof sourceOptions>, log: (line: string) => void): Promise<ImageSession[]> {
  const sessions: ImageSession[] = [];
  try {
    for (const arg of jigdoArgs) {
      const jigdo = await loadCommandJigdo(arg, opts, log);
      const images = flags.image ? [selectImage(jigdo, flags.image)] : jigdo.images;
      for (const image of images) sessions.push(await openImage(jigdo, image, { ...opts, log, logMissing: true }));
    }
  } catch (err) {
    await Promise.all(sessions.map((s) => s.close().catch(() => undefined)));
    throw err;
  }
  for (const s of sessions) void s.local.scan().catch((err: unknown) => log(`scan failed: ${errorMessage(err)}`)); // index local files now
  return sessions;
}

async function serve(jigdoArgs: string[], flags: ServeFlags): Promise<void> {
  const port = parseWhole(flags.port, '--port', 0, 65535);
  const maxClients = parseWhole(flags.maxClients, '--max-clients', 1, 100_000);
  const drainMs = parseWhole(flags.drainTimeout, '--drain-timeout', 0, 86_400) * 1000;
  const sendMs = parseWhole(flags.sendTimeout, '--send-timeout', 1, 86_400) * 1000;
  const opts = sourceOptions(flags, { timestamps: true });
  const { log } = opts;
  const sessions = await openAll(jigdoArgs, flags, opts, log);
  try {
    const images = await servedImages(sessions, new Date());
    await runServer(images, { host: flags.host, port, maxClients, drainMs, sendMs, log, extraStatus: () => opts.network?.fullStats() }, (url) => {
      // Always said, even with --quiet: with --port 0 it is the only way to learn the port.
      process.stderr.write(`jigdofs: serving ${images.map((i) => `${url}${percentEncodeComponent(i.name)}`).join(' ')} (pid ${process.pid})\n`);
    });
  } finally {
    await Promise.all(sessions.map((s) => s.close().catch(() => undefined)));
    await endCommand(opts);
  }
}

export function registerServe(program: Command): void {
  addSourceOptions(
    program
      .command('serve')
      .description('serve the image(s) of .jigdo files over HTTP (Range, ETag), fetched lazily as they are read')
      .argument('<jigdo...>', '.jigdo files or http(s) URLs')
      .option('--host <HOST>', 'address to listen on (0.0.0.0 or :: for every interface: your explicit choice)', '127.0.0.1')
      .option('--port <PORT>', 'TCP port (0: any free one, printed at start)', '8080')
      .option('--max-clients <N>', 'requests served at the same time; more get 503 with Retry-After', '64')
      .option('--drain-timeout <S>', 'on SIGTERM, seconds to let responses under way finish', '30')
      .option('--send-timeout <S>', 'seconds a client may take none of a response before it is cut (as nginx send_timeout)', '60'),
  ).action(async (jigdoArgs: string[], flags: ServeFlags) => serve(jigdoArgs, flags));
}
