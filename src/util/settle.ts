/**
 * Waits for every job, then throws the first failure (like Promise.all, but never returns early).
 *
 * For jobs writing into one shared buffer: after a failure the others may still be copying into it, and
 * the caller must not hand the buffer back (FUSE frees or reuses its reply buffer once answered) until
 * nothing writes into it any more. A late write into a released FUSE buffer is a memory corruption
 * that killed the mount daemon.
 */
export async function settleAll(jobs: Array<Promise<unknown>>): Promise<void> {
  const results = await Promise.allSettled(jobs);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}
