/**
 * Lets files of the disk cache leave the page cache (util/page-cache.ts through WorkerPool.dropPages) once a reader is
 * done with them (PartCache.leavePageCache): each once its bytes are on the disk, since only clean pages can be
 * dropped and an unhashed download is synced in the background (PartCache.commitUnhashed), maybe after its reader is
 * done with it. Such a file may be renamed to its checksum name meanwhile (PartCache.confirmUnhashed): that name is
 * tried too. Owns the drops in flight (`pending`), which `idle` waits for.
 */
export class PageRelease {
  private readonly pending = new Set<Promise<void>>();

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

  /** Waits for the drops asked for so far. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
  }
}
