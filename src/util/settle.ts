import { setMaxListeners } from 'node:events';
import { onAbort } from './on-abort.js';

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
  setMaxListeners(0, controller.signal); // (jobs wait on it through onAbort; whatever else takes it may listen directly)
  const unhook = onAbort(outer, () => controller.abort(outer?.reason));
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
  unhook();
  if (failure) throw failure.error;
}

/**
 * settleAll over `tasks`, taken in order as they are needed, at most `limit` running at a time: what a read of a
 * template cut into hundreds of thousands of regions starts at once is bounded (each job held a few KB while it
 * waited; 262,143 regions of one part in one block took 1.7 GB). A task that fails aborts the others' signal, and no
 * further task starts.
 */
export async function settleEach(tasks: Iterable<(signal: AbortSignal) => Promise<unknown>>, limit: number, outer?: AbortSignal): Promise<void> {
  const it = tasks[Symbol.iterator]();
  await settleAll((signal, jobs) => {
    // An aborted signal fails a lane rather than ending it: a task left unrun has not written its bytes, and only a
    // failure may say so (an outer abort is no job's failure).
    const lane = async (first: (signal: AbortSignal) => Promise<unknown>): Promise<void> => {
      throwIfAborted(signal);
      await first(signal);
      for (;;) {
        const next = it.next();
        if (next.done) return;
        throwIfAborted(signal);
        await next.value(signal);
      }
    };
    // As many lanes as tasks, up to the limit: a read of one region is one job, as it was.
    for (let i = 0; i < limit; i++) {
      const next = it.next();
      if (next.done) break;
      jobs.push(lane(next.value));
    }
  }, outer);
}

/** `p`, or, as soon as `signal` aborts, a rejection with its reason (`p` goes on; its result is dropped). */
export function unlessAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const unhook = onAbort(signal, () => reject(signal.reason));
    p.then(
      (value) => {
        unhook();
        resolve(value);
      },
      (err: unknown) => {
        unhook();
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
