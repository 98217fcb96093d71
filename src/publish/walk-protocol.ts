/**
 * Messages between listCandidates (candidates.ts) and its walk worker (walk-worker.ts). The worker gets one message,
 * the arguments in order (`null`: an old disc image, `IMAGE//`, listed by the main thread at that place), and answers
 * with batches of files found, warnings, a `disc` mark where such an argument stands, then `done` or `error`.
 */

/** A folder or file argument, split at its last `//`. */
export interface WalkArg {
  location: string;
  leaf: string;
}

/** Files found, in order: file i is argument args[i]'s location + leaves[i]; ids[5i..5i+4] its size, mtimeMs, ctimeMs, ino, dev. */
export interface WalkBatch {
  op: 'found';
  args: number[];
  leaves: string[];
  ids: number[];
}

export type WalkReply =
  | WalkBatch
  | { op: 'warn'; line: string }
  | { op: 'disc'; arg: number }
  | { op: 'done' }
  | { op: 'error'; error: string };

/** Files to a `found` message. */
export const WALK_BATCH = 1024;
