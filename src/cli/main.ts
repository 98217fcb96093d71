import './heap-limits.js'; // first: V8 flags must be set before the heap grows
import { Command, CommanderError } from 'commander';
import { quoted } from '../format/byte-string.js';
import { JigdoError, UsageError, errorMessage } from '../format/errors.js';
import { registerInfo } from './commands/info.js';
import { registerMakeImage } from './commands/make-image.js';
import { registerMakeTemplate } from './commands/make-template.js';
import { registerMissing } from './commands/missing.js';
import { registerVerify } from './commands/verify.js';
import { registerMount } from './commands/mount.js';
import { registerUmount } from './commands/umount.js';
import { registerStatus } from './commands/status.js';
import { registerServe } from './commands/serve.js';
import { legacyFuseCall } from './fstab-options.js';
import { exactArgv } from './exact-argv.js';
import { refuseEmptyValues } from './options.js';
import { handleEndingSignals } from '../util/signals.js';

/** Exit codes: 0 success, 1 failure (bad input, missing parts, wrong image), 2 usage error. */
export function buildProgram(): Command {
  const program = new Command('jigdofs')
    .description('Use jigdo disc images without building them first: mount, serve over HTTP, build, verify.')
    .version('0.1.0')
    .exitOverride();
  registerInfo(program);
  registerMissing(program);
  registerVerify(program);
  registerMakeImage(program);
  registerMakeTemplate(program);
  registerMount(program);
  registerUmount(program);
  registerStatus(program);
  registerServe(program);
  for (const cmd of program.commands) {
    cmd.exitOverride();
    refuseEmptyValues(cmd);
    oneLineUsageErrors(cmd, `jigdofs ${cmd.name()} --help`);
  }
  oneLineUsageErrors(program, 'jigdofs --help');
  return program;
}

/**
 * commander's usage errors as every error of ours is said: one line, `jigdofs: ` first (it wrote `error: unknown option
 * '--bogus'` and the hint on a line of its own).
 */
function oneLineUsageErrors(cmd: Command, help: string): void {
  cmd.configureOutput({
    outputError: (text, write) => {
      // commander's lines: the error, and maybe a suggestion, `(Did you mean --json?)`.
      const [error, ...more] = text.replace(/^error: /, '').trimEnd().split('\n');
      const hints = [...more.map((line) => line.replace(/^\((.*)\)$/, '$1')), `see ${help}`];
      write(`jigdofs: ${quoted(error!)} (${quoted(hints.join('; '))})\n`);
    },
  });
}

/**
 * The first error writing standard output (ENOSPC on a full disk), looked at once a command is done: `info > full/x`
 * said nothing, wrote nothing and exited 0. Not EPIPE: a reader that had enough (`missing | head -1`) is no failure of
 * a listing (make-image's image to `-o -` says it itself: stream-out.ts).
 */
let outputError: NodeJS.ErrnoException | undefined;

/**
 * outputError, once what was written to standard output went out: a write of nothing, queued after writes still
 * pending, or the next turn, when a write done at once (a file's, a pipe's on Linux) has emitted its error. Not a write
 * of nothing every time: on a standard output that cannot be written (a closed one: bin/jigdofs), it fails too, and a
 * command that wrote nothing there (mount) would fail.
 */
async function outputFailure(): Promise<NodeJS.ErrnoException | undefined> {
  if (!outputError && process.stdout.writableLength > 0) await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  if (!outputError) await new Promise((resolve) => setImmediate(resolve));
  return outputError?.code === 'EPIPE' ? undefined : outputError;
}

/** A command's error, as its one line on stderr: non-UTF-8 name bytes and terminal controls escaped (`quoted`). */
const sayError = (text: string): void => void process.stderr.write(`jigdofs: ${quoted(text)}\n`);

/** A command's exit `code`, or 1 with its line when what it wrote to standard output did not go out. */
async function outputChecked(code: number): Promise<number> {
  const failed = await outputFailure();
  if (!failed) return code;
  sayError(`standard output: cannot write: ${errorMessage(failed)}`);
  return code !== 0 ? code : 1; // (a command's own failure code stands: verify's 1 for a wrong image, say)
}

export async function main(given: string[]): Promise<number> {
  const program = buildProgram();
  process.stdout.on('error', (err: NodeJS.ErrnoException) => (outputError ??= err));
  try {
    // Arguments by their exact bytes (a non-UTF-8 .jigdo path or --local folder): see exact-argv.ts.
    const argv = given === process.argv ? (process.argv = exactArgv(given)) : given;
    // fstab's `jigdofs#JIGDO MOUNTPOINT fuse OPTIONS`: mount.fuse runs `jigdofs JIGDO MOUNTPOINT -o OPTIONS`.
    // Every name a command answers to (`unmount` is `umount`), and commander's own `help`.
    const legacy = legacyFuseCall(argv.slice(2), ['help', ...program.commands.flatMap((c) => [c.name(), ...c.aliases()])]);
    if (legacy && !legacy.argv) return 0;
    // `mount` starts its daemon with process.argv: it must see the `jigdofs mount ...` form too.
    if (legacy && argv === process.argv) process.argv = [...argv.slice(0, 2), ...legacy.argv!];
    await program.parseAsync(legacy ? [...argv.slice(0, 2), ...legacy.argv!] : argv);
    return await outputChecked(typeof process.exitCode === 'number' ? process.exitCode : 0);
  } catch (err) {
    // --help, --version: their text on standard output is the command's output (`jigdofs --help > /dev/full`: exit 1).
    if (err instanceof CommanderError) return err.exitCode === 0 ? outputChecked(0) : 2;
    if (err instanceof UsageError) {
      // A usage error may quote a .jigdo (selectImage lists its Filenames): its terminal controls are escaped.
      sayError(err.message);
      return 2;
    }
    // Non-UTF-8 name bytes and controls as \xNN. Ours whole (a name's newline is \x0a: cut there, the name and the reason
    // after it were lost); another's first line (a tool's own messages may run on).
    const message = err instanceof JigdoError ? err.message : errorMessage(err).split('\n')[0]!;
    sayError(message);
    if (process.env.JIGDOFS_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}

// First: a signal during start-up (a template still downloading) leaves nothing behind either (signals.ts).
handleEndingSignals();
// Exit explicitly: worker threads or open handles must never keep a finished command alive.
void main(process.argv).then((code) => process.exit(code));
