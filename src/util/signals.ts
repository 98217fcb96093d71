import { removeLeftoversNow } from './exit-leftovers.js';

/** The signals that end a jigdofs process: Ctrl-C, a kill, a closed terminal. */
export const ENDING_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type EndingSignal = (typeof ENDING_SIGNALS)[number];
type Handler = (sig: EndingSignal) => void;

/** The handlers waiting for the next ending signal (onEndingSignal); each is called once. */
const waiting = new Set<Handler>();
let installed = false;

/**
 * The process's one listener for SIGINT, SIGTERM and SIGHUP (installed by the CLI first thing). A command that ends
 * gracefully on a signal (a mount's unmount, serve's drain, make-image's removal of its temporary image) asks for
 * the next one with onEndingSignal. A signal that no handler takes, because none asked yet (a template still
 * downloading at start-up) or because the one that asked has it already (a second Ctrl-C while a mount shuts down),
 * ends the process as the signal's default action would, once the files it must not leave are removed
 * (exit-leftovers.ts) and one line says why: before, such a death left a download's temporary file and lock in the
 * cache, or a spill or index file being written.
 */
export function handleEndingSignals(): void {
  if (installed) return;
  installed = true;
  for (const sig of ENDING_SIGNALS) process.on(sig, dispatch);
}

function dispatch(sig: EndingSignal): void {
  if (waiting.size > 0) {
    const handlers = [...waiting];
    waiting.clear();
    for (const handler of handlers) handler(sig);
    return;
  }
  process.stderr.write(`jigdofs: interrupted (${sig})\n`);
  endBySignal(sig);
}

/**
 * Ends the process by `sig`, as its default action would (a shell loop around us sees the signal), once the files it
 * must not leave are removed (exit-leftovers.ts). For a handler that said what it did not finish itself.
 */
export function endBySignal(sig: EndingSignal): void {
  removeLeftoversNow();
  for (const s of ENDING_SIGNALS) process.off(s, dispatch);
  process.kill(process.pid, sig); // no listener now: the default action ends the process
}

/** Calls `handler` at the next ending signal (once; the one after goes to the next handler, or ends the process). Returns the undo. */
export function onEndingSignal(handler: Handler): () => void {
  handleEndingSignals();
  waiting.add(handler);
  return () => waiting.delete(handler);
}
