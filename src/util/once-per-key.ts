/**
 * The run of `start` for `key` that is under way, or a new one: one run per key however many callers come while it
 * runs; once it settles, the next caller starts another.
 */
export function oncePerKey<K, T>(runs: Map<K, Promise<T>>, key: K, start: () => Promise<T>): Promise<T> {
  let run = runs.get(key);
  if (!run) {
    run = start().finally(() => runs.delete(key));
    runs.set(key, run);
  }
  return run;
}
