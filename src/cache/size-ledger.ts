import { closeSync, constants, openSync } from 'node:fs';
import { unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { openRegular } from '../util/open-regular.js';
import type { CacheFs } from './cache-fs.js';

/**
 * The cache's bytes and files, and when they were last counted from the files (ms since the epoch); `leftBytes` and
 * `leftFiles`: the share of them that is resumable downloads' idle leftovers (resume-leftovers.ts), as last counted
 * (absent in a count of versions before 2026-12-07).
 */
export interface SizeCount {
  bytes: number;
  files: number;
  at: number;
  leftBytes?: number;
  leftFiles?: number;
}

/** Bytes the count is padded to: every write covers the last one, so the file is never truncated. */
const WIDTH = 128;
/** A longer file is not a count (one of ours is WIDTH bytes; an older jigdofs wrote ~60). */
const MOST = 4096;

/**
 * `parts/size.json`, the count every process of one cache shares (cache-eviction.ts), read after taking the size lock
 * and written before releasing it. The file stays open between batches: `readFile` and `writeFile` took seven round
 * trips through libuv's pool per batch (open, fstat, read, close; open, write, close), a read and a write in place take
 * two. The count is padded with spaces (JSON allows them) to a fixed length, so a write covers the one before and the
 * file is not truncated (a truncation waits for the page's writeback). A file an older jigdofs wrote (shorter, with
 * `writeFile`, same inode) is read as it is.
 *
 * Owns `held`, the open file and the identity it had when opened: each use first looks at the name (a stat, synchronous
 * where CacheFs says it is fast), and a name that now points elsewhere or nowhere (the cache removed and made again)
 * has the file opened again, so the count is never written into a file nobody else can see.
 */
export class SizeLedger {
  private held: { fh: FileHandle; dev: number; ino: number } | undefined;
  /** The file's length as last read or written (a longer one than we write is cut to ours). */
  private length = 0;

  /** See markLeftovers. */
  private readonly leftoversMark: string;

  constructor(
    readonly file: string,
    private readonly fs: CacheFs,
  ) {
    this.leftoversMark = path.join(path.dirname(file), 'size.leftovers');
  }

  /** The count's text, or undefined when there is no file (or one too long to be a count). */
  async read(): Promise<string | undefined> {
    const fh = await this.handle(false);
    if (!fh) return undefined;
    const buf = Buffer.alloc(MOST);
    const { bytesRead } = await fh.read(buf, 0, MOST, 0);
    this.length = bytesRead;
    return bytesRead < MOST ? buf.toString('utf8', 0, bytesRead) : undefined;
  }

  /** The count, if there is one younger than `maxAgeMs` (read under the size lock only). */
  async readCount(maxAgeMs: number): Promise<SizeCount | undefined> {
    try {
      const text = await this.read();
      if (text === undefined) return undefined;
      const { bytes, files, at, leftBytes, leftFiles } = JSON.parse(text) as Record<keyof SizeCount, unknown>;
      if (typeof bytes !== 'number' || typeof files !== 'number' || typeof at !== 'number') return undefined;
      if (!(bytes >= 0 && files >= 0 && Date.now() - at < maxAgeMs)) return undefined;
      const left = typeof leftBytes === 'number' && typeof leftFiles === 'number' && leftBytes >= 0 && leftFiles >= 0;
      return left ? { bytes, files, at, leftBytes, leftFiles } : { bytes, files, at };
    } catch {
      return undefined; // none yet, or torn by a process that died writing it: the caller counts the files
    }
  }

  /** Writes the count; a failure is no error (the next batch counts the files when the count is too old). */
  async writeCount(count: SizeCount): Promise<void> {
    await this.write(JSON.stringify(count)).catch(() => undefined);
  }

  /** Writes the count's text in place (creating the file if there is none). */
  async write(text: string): Promise<void> {
    const fh = await this.handle(true);
    if (!fh) return;
    const body = Buffer.from(text.padEnd(WIDTH, ' '));
    await fh.write(body, 0, body.length, 0);
    if (this.length > body.length) await fh.truncate(body.length);
    this.length = body.length;
  }

  /**
   * Says that resumable downloads' leftovers were left or taken up (CacheEviction.leftoversChanged): a file beside the
   * count, `size.leftovers`, made now (synchronous: also in a Ctrl-C's last words). Not written into the count: a batch of
   * another process, under way, writes back the count it read and would undo it. Never throws.
   */
  markLeftovers(): void {
    try {
      // (Not through a symlink; a FIFO fails at once with ENXIO instead of waiting for a reader.)
      closeSync(openSync(this.leftoversMark, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600));
    } catch {
      // no cache folder yet (its first count takes them all), or a name we do not write through
    }
  }

  /** Whether leftovers changed since the last count of them (markLeftovers): one stat, synchronous where fast. */
  leftoversMarked(): Promise<boolean> {
    return this.fs.stat(this.leftoversMark).then(() => true, () => false);
  }

  /** Before a count of the leftovers, under the size lock: a mark made while it runs stays for the next one. */
  async clearLeftoversMark(): Promise<void> {
    await unlink(this.leftoversMark).catch(() => undefined);
  }

  async close(): Promise<void> {
    const held = this.held;
    this.held = undefined;
    await held?.fh.close().catch(() => undefined);
  }

  /** The open file, if it still is the one at the name; opened (created when `create`) if not. */
  private async handle(create: boolean): Promise<FileHandle | undefined> {
    const st = await this.fs.stat(this.file).catch(() => undefined);
    if (this.held && st && st.ino === this.held.ino && st.dev === this.held.dev) return this.held.fh;
    await this.close();
    if (!st && !create) return undefined;
    // Not through a symlink (it truncated the file it led to, outside the cache), nor into a FIFO (the open hung).
    const fh = await openRegular(this.file, constants.O_RDWR | constants.O_CREAT, { noFollow: true });
    try {
      const now = await this.fs.fstat(fh);
      this.held = { fh, dev: now.dev, ino: now.ino };
      this.length = now.size;
      return fh;
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }
}
