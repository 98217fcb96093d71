/**
 * A FIFO counting semaphore: at most `n` jobs run at once, the others start in the order they asked.
 *
 * Owns: `free` (slots not taken) and `waiting` (resolvers of jobs queued for a slot). A finishing job hands
 * its slot straight to the first waiter instead of freeing it, so a job arriving meanwhile cannot jump the
 * queue. No locks beyond that; `run` awaits the slot, then `fn`, and always gives the slot back.
 */
export class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(n: number) {
    this.free = Math.max(1, n);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}
