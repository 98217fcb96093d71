/** The wait between rounds of retries: every failure of the same thing waits longer, jittered so that parts do not retry in step. */

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** About 0.5 s, 1.5 s, 4.5 s... for rounds 1, 2, 3... (±25 %). */
export const backoff = (round: number): number => 500 * 3 ** (round - 1) * (0.75 + Math.random() / 2);
