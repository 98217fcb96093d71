import { FetchError } from './fetch-error.js';

/** What a file of unknown size must be like (a 'refused' failure otherwise), checked while it comes. */
export interface BodyRules {
  /** Most bytes the file may have: a larger stated size is refused before the body, a longer body at the limit. */
  maxBytes?: number;
  /** Says what the limit is, for the message: "it has N bytes, more than <maxWhy>". */
  maxWhy?: string;
  /** The file's first bytes must be these: refused as soon as they are not (so garbage costs kilobytes). */
  magic?: Buffer;
  /** Says what the file should be, for the message: "not <what> (...)". */
  magicWhat?: string;
}

/** The 'refused' failure of a file larger than `rules.maxBytes`: its stated size, or undefined when the body passed it. */
export function tooLarge(url: string, rules: BodyRules, stated?: number): FetchError {
  const max = rules.maxWhy ?? `${rules.maxBytes} bytes`;
  const message = stated === undefined ? `it goes on past ${max}: download stopped there` : `it has ${stated} bytes, more than ${max}: not downloaded`;
  return new TooLarge(url, 'refused', message);
}

/** A 'refused' failure for the size alone (tooLarge): what was written is not the wrong file, but there is too much of it. */
export class TooLarge extends FetchError {}

/**
 * Checks a body's first bytes against `rules.magic` as they arrive.
 * Owns `got` (the first bytes so far, at most the magic's length) and `done` (checked: later chunks are
 * not looked at). Used by one body's pump, so no locks.
 */
export class HeadCheck {
  private got = Buffer.alloc(0);
  private done = false;

  constructor(
    private readonly url: string,
    private readonly rules: BodyRules,
  ) {}

  add(chunk: Buffer): void {
    if (this.done) return;
    const magic = this.rules.magic!;
    this.got = Buffer.concat([this.got, chunk.subarray(0, magic.length - this.got.length)]);
    if (this.got.length >= magic.length) this.check();
  }

  /** The body ended: a file shorter than the magic is not the file wanted either. */
  end(): void {
    if (!this.done) this.check();
  }

  private check(): void {
    this.done = true;
    if (this.got.equals(this.rules.magic!)) return;
    const seen = JSON.stringify(this.got.toString('latin1').replace(/[^\x20-\x7e]/g, '.'));
    throw new FetchError(this.url, 'refused', `not ${this.rules.magicWhat ?? 'the file wanted'} (it starts with ${seen})`);
  }
}
