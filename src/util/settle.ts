import { setMaxListeners } from 'node:events';

/**
 * Jobs that write into one shared buffer (the parts of one read): `start` starts them (pushing each onto
 * `jobs`); this waits until every one has finished, then throws the first failure.
 *
 * Why wait: FUSE frees or reuses its reply buffer once a read is answered, so nothing may write into it
 * after the read settled (a late write into a released FUSE buffer killed the mount daemon). Why not wait
 * long: on the first failure `signal` aborts; a job then starts no more writes and stops waiting for
 * its source (see unlessAborted), so a failed read is answered as soon as the writes in progress end,
 * not when a part still being fetched arrives. `outer` aborts the jobs too (for nested reads).
 */
export async function settleAll(start: (signal: AbortSignal, jobs: Array<Promise<unknown>>) => void, outer?: AbortSignal): Promise<void> {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal); // one listener per job waiting on a source: a read may span hundreds
  const onOuterAbort = (): void => controller.abort(outer!.reason);
  if (outer?.aborted) controller.abort(outer.reason);
  else outer?.addEventListener('abort', onOuterAbort, { once: true });
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown): void => {
    if (failure) return;
    failure = { error };
    controller.abort(error);
  };
  const jobs: Array<Promise<unknown>> = [];
  try {
    start(controller.signal, jobs);
  } catch (err) {
    fail(err); // the jobs started before the throw still run: wait for them all the same
  }
  await Promise.all(jobs.map((job) => job.catch(fail)));
  outer?.removeEventListener('abort', onOuterAbort);
  if (failure) throw failure.error;
}

/** `p`, or, as soon as `signal` aborts, a rejection with its reason (`p` goes on; its result is dropped). */
export function unlessAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Throws the signal's reason if it aborted: call right before starting a write into a shared buffer. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}

/** What `p` resolves to, or `late` after `ms`, whichever comes first (a look at a path that may hang); rejects as `p` does. */
export async function valueWithin<T>(p: Promise<T>, ms: number, late: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((resolve) => (timer = setTimeout(() => resolve(late), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once `p` has, or after `ms`, whichever comes first (a bounded wait at an unmount); rejects as `p` does. */
export async function settledWithin(p: Promise<unknown>, ms: number): Promise<void> {
  await valueWithin(p, ms, undefined);
}
