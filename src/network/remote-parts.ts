import { stat } from 'node:fs/promises';
import { shown } from '../format/byte-string.js';
import { hexOfKey } from '../format/checksum.js';
import type { JigdoFile } from '../format/jigdo.js';
import { MAX_CANDIDATE_LENGTH, partCandidates, type LabelMap } from '../format/resolve.js';
import type { ImageLayout } from '../image/layout.js';
import type { VerifiedCopy } from '../sources/verified-copy.js';
import type { PartProvider } from '../sources/part-store.js';
import type { FetchContext } from './fetch-context.js';
import { mirrorOf } from './mirror-board.js';
import { PartFetch } from './part-fetch.js';

/**
 * Parts at least this long are downloaded into a resumable file (PartCache.begin): what a Ctrl-C or a failed fetch
 * leaves, the next fetch of the part goes on from. Shorter ones cost a round trip more than their bytes.
 */
const RESUMABLE_PART_BYTES = 1 << 20;

/** One http(s) URL a part can be fetched from, and what the mirror board orders it by. */
export interface UrlCandidate {
  url: string;
  mirror: string;
  weight: number;
  /** From --mirror or the configuration file. */
  user: boolean;
}

/**
 * The mirrors as a PartProvider: a part's candidate URLs (spec §5.5, `--mirror` ones first), and one
 * verified download per part into the cache. Two readers of one part, in this process or another, share
 * one download: the cache's `begin` lets one writer through and has the others wait for its copy.
 * Holds no state of its own beyond what it was given (the counters are the board's), but for verify once:
 * whether it is on, and this session's parts cached unhashed.
 */
export class RemoteParts implements PartProvider {
  readonly name = 'mirrors';
  /** See deferChecks. */
  private deferring = false;
  /**
   * This session's parts cached unhashed: the copy, the mirrors its bytes came from (to blame: `rejected`), and
   * whether the part was downloaded unhashed more than once (its first copy vanished while read: the image may
   * hold bytes of both, so neither is named on the image's match, and a later reader hashes what is left).
   */
  private readonly unhashed = new Map<string, { copy: VerifiedCopy; mirrors: string[]; again: boolean }>();
  /** Files this process downloaded, until passed (a part another process fetched keeps its pages: it may be reading it). */
  private readonly downloaded = new Set<string>();
  /** Every copy this process downloaded, when it removes them at the end (NetworkOptions.keepDownloads false). */
  private readonly toRemove: VerifiedCopy[] = [];

  constructor(
    private readonly ctx: FetchContext,
    private readonly jigdo: JigdoFile,
    private readonly layout: ImageLayout,
    private readonly labels: LabelMap,
    private readonly userMirrors: Set<string> = new Set(),
  ) {}

  /**
   * The part's http(s) candidates in spec order, and what could not be used. `tooLong`: its [Parts] values gave no
   * candidate at all, which only strings over MAX_CANDIDATE_LENGTH (dropped by format/resolve.ts) leave.
   */
  candidates(key: string): { urls: UrlCandidate[]; unresolved: string[]; tooLong: boolean } {
    const urls: UrlCandidate[] = [];
    const unresolved: string[] = [];
    const all = partCandidates(this.jigdo, this.labels, key);
    for (const c of all) {
      if (c.kind === 'url' && /^https?:\/\//i.test(c.url)) {
        const mirror = mirrorOf(c.url, c.rest);
        urls.push({ url: c.url, mirror, weight: c.weight, user: this.userMirrors.has(mirror) });
      } else if (c.kind === 'unresolved') unresolved.push(c.text);
    }
    return { urls, unresolved, tooLong: all.length === 0 && (this.jigdo.parts.get(key)?.length ?? 0) > 0 };
  }

  /** `ahead` (PartProvider.find): the part comes in one request, hashed as it arrives (PartFetch). */
  async find(key: string, ahead = false): Promise<VerifiedCopy | undefined> {
    const need = this.layout.parts.get(key);
    if (!need) return undefined;
    const { urls, unresolved, tooLong } = this.candidates(key);
    if (urls.length === 0) {
      if (unresolved.length > 0) throw new Error(`no URL to fetch it from (${unresolvedWhy(unresolved)})`);
      if (tooLong) throw new Error(`no URL to fetch it from (its [Parts] values expand only to strings over ${MAX_CANDIDATE_LENGTH} characters)`);
      return undefined;
    }
    const { board, cache } = this.ctx;
    const kind = this.layout.checksumKind;
    board.parts.inFlight++;
    try {
      for (let attempt = 0; ; attempt++) {
        let waited = false;
        // (Not a part fetched ahead of a reader: a mount's close cuts up to 32 of those, whose bytes would lie about.)
        const started = await cache.begin('parts', kind, hexOfKey(key), () => (waited = true), !ahead && need.length >= RESUMABLE_PART_BYTES);
        if ('copy' in started) {
          if (waited) board.parts.fromOtherProcess++;
          return started.copy;
        }
        try {
          const fetch = new PartFetch(this.ctx, need, kind, urls, started.writer, this.deferring, ahead);
          const copy = await fetch.run();
          this.downloaded.add(copy.path);
          if (this.ctx.opts.keepDownloads === false) this.toRemove.push(copy);
          const before = this.unhashed.get(key);
          if (copy.deferred) this.unhashed.set(key, { copy, mirrors: fetch.sources, again: before !== undefined });
          else this.unhashed.delete(key); // hashed this time: nothing left to confirm or blame
          if (started.writer.allocated) {
            board.parts.fetched++;
            board.parts.bytes += need.length;
          } else board.parts.fromOtherProcess++; // (an earlier run's whole download, left before its commit: no request)
          return copy;
        } catch (err) {
          // The cache folder was removed meanwhile (its temporary file went with it): once more, into a new one.
          // (Not one the writer removed itself: no room on the disk, and the same wait for it again.)
          if (attempt === 0 && !started.writer.discarded && (await temporaryGone(started.writer.tmp))) continue;
          board.parts.failed++;
          throw err;
        } finally {
          await started.writer.abort();
        }
      }
    } finally {
      board.parts.inFlight--;
    }
  }

  /**
   * Verify once (ImageSession.deferChecks): parts from mirrors that proved right (MirrorBoard.trusted) are
   * cached unhashed while on. Off again before the parts are hashed after a wrong image, so that every part
   * fetched then is hashed first.
   */
  deferChecks(on: boolean): void {
    this.deferring = on;
  }

  /**
   * The image matched: the parts cached unhashed (each downloaded once, see `unhashed`) get their checksum names, or,
   * when the job keeps no downloads (make-image without --keep-parts), every part this process downloaded is removed:
   * the image holds them, and a second copy of it cost the disk as much again (the disk cache's provider removes those
   * of an interrupted run that this one adopted: Network.providers). A job that did not match keeps them all for its
   * rerun.
   */
  async confirmDeferred(): Promise<void> {
    const copies = [...this.unhashed.values()].filter((u) => !u.again && !u.copy.stale && !u.copy.otherCopyRead).map((u) => u.copy);
    this.unhashed.clear();
    if (this.ctx.opts.keepDownloads !== false) return this.ctx.cache.confirmUnhashed(copies);
    await this.ctx.cache.removeCopies(this.toRemove.splice(0));
  }

  /**
   * A sequential reader has read these downloads where the image last needs them: they leave the page cache
   * (PartCache.leavePageCache). Written for that reader and read once, their pages would otherwise stay until memory
   * runs short: a second copy of the image, pushing out what the user has there. A reader that wants one again reads
   * it from the disk. Parts found in the cache, and the user's files, keep their pages.
   */
  passed(copies: VerifiedCopy[]): void {
    const mine = copies.map((c) => c.path).filter((p) => this.downloaded.delete(p));
    this.ctx.cache.leavePageCache(mine);
  }

  /** A part cached unhashed hashed wrong (after a wrong image): the mirror that sent it sent wrong bytes. */
  rejected(key: string): void {
    const from = this.unhashed.get(key)?.mirrors;
    this.unhashed.delete(key);
    if (!from || from.length === 0) return;
    const message = `wrong bytes for part ${key} (checksum mismatch, found by the image checksum)`;
    // Bytes of one mirror only: it is wrong. From several, any of them may be: the refetch hashes each part.
    if (from.length === 1) {
      this.ctx.board.mismatch(from[0]!, message);
      this.ctx.opts.log(`mirror ${from[0]} served ${message}`);
    } else this.ctx.opts.log(`mirrors ${from.join(', ')} served ${message}`);
  }
}

/**
 * The download's temporary file is gone: its folder was removed (`rm -rf` of the cache) meanwhile. Asked of the file,
 * not of the error: its rename, or its hash on a worker thread (whose error comes back without a code), failed first.
 * (Not of the folder: the cache makes it again for other downloads at once.)
 */
async function temporaryGone(tmp: string): Promise<boolean> {
  return stat(tmp).then(() => false, (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
}

/**
 * Why none of a part's `unresolved` strings can be fetched, for the missing part's reason: URLs of another scheme
 * (`ftp://`, which [Servers] may name) are not fetched; anything else starts with a label no [Servers] line defines.
 */
function unresolvedWhy(unresolved: string[]): string {
  const urls = unresolved.filter((t) => /^[a-z][a-z0-9+.-]*:\/\//i.test(t));
  // (An http:// one that is here was refused as a URL: `http://host:99999/`, `http://[::1/`.)
  const invalid = urls.filter((t) => /^https?:/i.test(t));
  const otherScheme = urls.filter((t) => !invalid.includes(t));
  const labels = unresolved.filter((t) => !urls.includes(t));
  const said = (list: string[], why: string): string[] => (list.length ? [`${list.slice(0, 3).map(shown).join(', ')}: ${why}`] : []);
  return [
    ...said(invalid, 'not a valid URL'),
    ...said(otherScheme, 'only http:// and https:// URLs are fetched'),
    ...said(labels, 'label not defined'),
  ].join('; ');
}
