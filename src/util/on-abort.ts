/** What waits on each signal: a Set behind one listener of the signal's own (watch). */
const waiting = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Calls `fn` once `signal` aborts (at once if it has); the function returned stops that (no signal: never, and a stop
 * that does nothing, so that callers with an optional signal need no branch of their own). Both cost the same however many
 * wait on the signal: Node's EventTarget looks through every listener a signal has at each addEventListener (for a
 * duplicate), so a listener per job, one job per region of a read, was quadratic: a valid 4 MB template of 524,287
 * one-byte regions kept one 4 MiB block of make-image busy for hours, deaf to signals meanwhile. Nor does a shared
 * signal (a part's streams, the waits between retries) pass Node's warning line of 10 listeners.
 */
export function onAbort(signal: AbortSignal | undefined, fn: () => void): () => void {
  if (!signal) return () => undefined;
  if (signal.aborted) {
    fn();
    return () => undefined;
  }
  const fns = waiting.get(signal) ?? watch(signal);
  // (A wrapper of its own, which its stop removes: the same `fn` may wait twice.)
  const call = (): void => fn();
  fns.add(call);
  return () => void fns.delete(call);
}

/** The signal's one listener: every waiter called though one throws (the throw rethrown from a microtask, as a listener's). */
function watch(signal: AbortSignal): Set<() => void> {
  const fns = new Set<() => void>();
  waiting.set(signal, fns);
  signal.addEventListener('abort', () => {
    waiting.delete(signal);
    for (const f of fns) {
      try {
        f();
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }, { once: true });
  return fns;
}
