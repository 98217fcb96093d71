/**
 * How far ahead of a stream of the image its parts may be located (fetched): `within(offset)` waits until `offset` is
 * less than `ahead` bytes past the stream's position. A make-image whose disk cache cannot hold all the parts locates
 * them no further ahead than the cache holds: parts fetched further ahead were evicted before the stream reached
 * them, and fetched again (--cache-size 10M, 50 MB of parts: 57.5 MB from the mirror).
 *
 * Owns the position and the waiters (look-ups held back), released as the position advances, or all at once by `open`.
 */
export class StreamReach {
  private position = 0;
  private waiters: Array<{ offset: number; go: () => void }> = [];

  constructor(private readonly ahead: number) {}

  within(offset: number): Promise<void> {
    if (offset < this.position + this.ahead) return Promise.resolve();
    return new Promise((go) => this.waiters.push({ offset, go }));
  }

  /** The stream has reached `position` (bytes of the image written). */
  advance(position: number): void {
    this.position = Math.max(this.position, position);
    const limit = this.position + this.ahead;
    const due = this.waiters.filter((w) => w.offset < limit);
    if (due.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.offset >= limit);
    for (const w of due) w.go();
  }

  /** No limit any more: the stream ended or stopped, and every part is to be located (to name the missing ones). */
  open(): void {
    this.advance(Infinity);
  }
}
