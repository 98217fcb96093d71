/**
 * Runs `fn` on every item, at most `limit` at a time, starting them in order; resolves once every call started has
 * ended. After a call fails no new one starts, and once the running ones have ended the first failure is thrown, so
 * nothing this started still runs when it returns or throws. `stopped()` true: no new call starts either (an early
 * end that is not a failure).
 */
export async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>, stopped: () => boolean = () => false): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (!failure && next < items.length && !stopped()) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  if (failure) throw failure.err;
}
