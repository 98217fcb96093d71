import { shown } from './byte-string.js';

/**
 * One error type for bad input: it names the file, where in it (when known) and what is wrong,
 * so every front end can print a single clear line and pick an exit code.
 */
export class JigdoError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
    readonly offset?: number,
  ) {
    // A name from a .jigdo may hold escaped non-UTF-8 bytes: the message shows them as \xNN (byte-string.ts).
    const said = elided(shown(problem));
    super(offset === undefined ? `${shown(file)}: ${said}` : `${shown(file)}: at byte ${offset}: ${said}`);
    this.name = 'JigdoError';
  }
}

/** Longest problem text kept whole; a longer one (it quotes a huge value of the file) loses its middle. */
const MAX_PROBLEM = 600;

/** `text` with its middle cut out when too long: the start (what) and the end (why) stay, on one line. */
export function elided(text: string): string {
  if (text.length <= MAX_PROBLEM) return text;
  const head = text.slice(0, 300).replace(/[\ud800-\udbff]$/, ''); // never half a surrogate pair
  const tail = text.slice(-200).replace(/^[\udc00-\udfff]/, '');
  return `${head}…(${text.length - head.length - tail.length} characters)…${tail}`;
}

/** A request the user phrased wrongly (bad option value): exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A part or range that no source can give: reads fail with EIO, commands exit 1. */
export class UnavailableError extends Error {
  override name = 'UnavailableError';
}

/** The message of any thrown value, for one-line logs. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * The template cannot be had right now (not there yet, or only on the network while --offline): not a
 * bad file. `info` still answers from the .jigdo alone; every other command fails with its message.
 */
export class TemplateUnavailableError extends JigdoError {
  override name = 'TemplateUnavailableError';
}
