/** The kernel writes dirty pages back once 30 s old (vm.dirty_expire_centisecs), its flusher waking every 5 s. */
const LATER_MS = 40_000;

/**
 * Lets files of the disk cache leave the page cache (util/page-cache.ts through WorkerPool.dropPages) once a reader is
 * done with them (PartCache.leavePageCache): each once its bytes are on the disk, since only clean pages can be
 * dropped and an unhashed download is synced in the background (PartCache.commitUnhashed), maybe after its reader is
 * done with it. Such a file may get its checksum name meanwhile (PartCache.confirmUnhashed): that name is
 * tried too. Owns the drops in flight (`pending`), which `idle` waits for, and those not due yet (`timers`: leaveLater),
 * which `idle` cancels.
 */
export class PageRelease {
  private readonly pending = new Set<Promise<void>>();
  private readonly timers = new Set<NodeJS.Timeout>(); // leaveLater's, cancelled by idle

  constructor(
    /** Drops files from the page cache; absent: nothing is dropped. */
    private readonly dropPages: ((paths: string[]) => Promise<void>) | undefined,
    /** Resolves once the file is on the disk (or its sync failed). */
    private readonly whenSynced: (file: string) => Promise<void>,
    /** The name an unhashed file gets once confirmed; the same name for any other. */
    private readonly finalName: (file: string) => string,
  ) {}

  /** Drops these files from the page cache, each once on the disk. Never fails. */
  leave(paths: string[]): void {
    const drop = this.dropPages;
    if (!drop || paths.length === 0) return;
    const done = Promise.all(paths.map((p) => this.whenSynced(p)))
      .then(() => drop([...new Set(paths.flatMap((p) => [p, this.finalName(p)]))]))
      .catch(() => undefined)
      .finally(() => this.pending.delete(done));
    this.pending.add(done);
  }

  /**
   * Files never synced (PartCache.commitUnhashed, not durable): dropped only after LATER_MS, by when the kernel's
   * flusher has written them if they still exist (so the drop writes nothing it would not have), in a run too long
   * to keep a whole image's downloads in memory. A short run has removed them by then. Cancelled by idle.
   */
  leaveLater(paths: string[]): void {
    if (!this.dropPages || paths.length === 0) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.leave(paths);
    }, LATER_MS);
    timer.unref();
    this.timers.add(timer);
  }

  /** Waits for the drops asked for so far; those of leaveLater not due yet are not made. */
  async idle(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    while (this.pending.size > 0) await Promise.all(this.pending);
  }
}
