import type { FileHandle } from 'node:fs/promises';

/**
 * How often the open cache files are checked: another process's eviction waits this long at most, plus the checks and
 * the close, for the blocks it freed (DiskRoom waits up to HELD_MS for them before it evicts more).
 */
export const SWEEP_MS = 1000;

/** An open file the sweep checks: its part, and the store's handle (opening, or open). */
export interface SweptHandle {
  key: string;
  fh: Promise<FileHandle>;
}

/**
 * Finds the open cache files that were unlinked, so that the store lets go of them. A process that evicts is told of
 * nothing another process holds open (DiskRoom tells only the readers of its own process: CacheWatcher.gone), and an
 * unlinked file keeps its blocks until its last descriptor closes: a mount that had read parts kept them, the free
 * space never grew, and a second process on the same cache evicted more and more for nothing (the whole cache, then
 * failed with ENOSPC). So while the store has cache files open, every `everyMs` each is fstat()ed (one call per open
 * file, one after another: the libuv pool stays free for reads; nothing is added to a read) and those with no link
 * left are handed to `unlinked`. The timer is unref()ed (a finished command does not wait for it), pauses while no
 * cache file is open and stops for good with the store.
 */
export class UnlinkedSweep {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    /** The cache files open now (not a user's file: one of those unlinked is still the user's, checked after each read). */
    private readonly open: () => SweptHandle[],
    /** Called for each one found unlinked; the store closes it once no read uses it. */
    private readonly unlinked: (h: SweptHandle) => void,
    private readonly everyMs = SWEEP_MS,
  ) {}

  /** A cache file was opened: the checks run from now on, until none is open. */
  opened(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.sweep(), this.everyMs);
    this.timer.unref();
  }

  /** Checks every open cache file once (a check under way is joined). */
  sweep(): Promise<void> {
    return (this.running ??= this.run().finally(() => (this.running = undefined)));
  }

  private async run(): Promise<void> {
    const open = this.open();
    if (open.length === 0) return this.pause(); // in the same turn as the look: a file opened later restarts the timer
    for (const h of open) {
      // A handle closed meanwhile (evicted, or never opened) fails its fstat: nothing to do.
      const st = await h.fh.then((fh) => fh.stat()).catch(() => undefined);
      if (this.stopped) return; // the store closed its files itself
      if (st?.nlink === 0) this.unlinked(h);
    }
  }

  private pause(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The store closes: no more checks. */
  stop(): void {
    this.stopped = true;
    this.pause();
  }
}
