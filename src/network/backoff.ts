import { onAbort } from '../util/on-abort.js';

/** The wait between rounds of retries: every failure of the same thing waits longer, jittered so that parts do not retry in step. */

/** The longest delay setTimeout takes: a larger one (or Infinity) fires after 1 ms, which would retry at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The longest wait between two rounds (before the jitter). 30 s is the default --timeout: a round never waits longer
 * than one stalled request costs. Longer waits buy nothing: a mirror that needs more time is handled by the board
 * (demotion, down for up to 5 min: MirrorBoard), and meanwhile a reader blocked on the part (a FUSE read) would hang
 * for minutes; uncapped, the tripling reached 22 min in round 8 and overflowed setTimeout (to 1 ms) from round 15.
 */
export const MAX_BACKOFF_MS = 30_000;

/** Never more than setTimeout can take (see MAX_TIMER_MS), never negative; over at once when `signal` aborts (a shutdown). */
export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      unhook();
      resolve();
    };
    const timer = setTimeout(done, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
    const unhook = onAbort(signal, done);
  });

/** About 0.5 s, 1.5 s, 4.5 s... for rounds 1, 2, 3..., at most MAX_BACKOFF_MS (each ±25 %). */
export const backoff = (round: number): number => Math.min(MAX_BACKOFF_MS, 500 * 3 ** (round - 1)) * (0.75 + Math.random() / 2);
