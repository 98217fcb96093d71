import { createHash } from 'node:crypto';
import { rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { PartCache } from '../cache/part-cache.js';
import type { CacheWriter } from '../cache/cache-writer.js';
import type { SumCheck, VerifiedCopy } from '../sources/verified-copy.js';
import { JigdoError, TemplateUnavailableError } from '../format/errors.js';
import type { JigdoImage } from '../format/jigdo.js';
import { describeLocation, type Location } from '../format/location.js';
import { makeDirs } from '../util/make-dirs.js';
import type { BodyRules } from './body-rules.js';
import type { FetchContext } from './fetch-context.js';
import { downloadWhole, RefusedDownload } from './resumable-download.js';

/** How every template starts (the check of parseHeader in format/template.ts): anything else is refused at once. */
const TEMPLATE_MAGIC = Buffer.from('JigsawDownload template ');

/**
 * Remote templates: from the cache (named by the .jigdo's Template-*Sum), else downloaded, verified and
 * cached; a template the .jigdo gives no checksum for is downloaded anew each time.
 *
 * Owns the counters of `jigdofs status` (fetched, from the cache). The cache's `begin` serializes
 * downloads of one verified template across processes; unverified ones go to a private temporary file
 * and are renamed into place (the last one wins).
 */
export class TemplateDownloads {
  private readonly counts = { fetched: 0, fromCache: 0 };

  /** `ctx` is undefined when offline: only the cache is looked at. */
  constructor(
    private readonly cache: PartCache,
    private readonly ctx: FetchContext | undefined,
  ) {}

  stats(): { fetched: number; fromCache: number } {
    return { ...this.counts };
  }

  /** The local path of the template at `loc`, verified against Template-SHA256Sum / Template-MD5Sum when given. */
  async fetch(loc: Location, image: JigdoImage, matches?: (file: string) => Promise<boolean>): Promise<string> {
    const where = describeLocation(loc);
    if (loc.kind === 'file') return loc.path;
    const sums: SumCheck[] = [];
    if (image.templateSha256) sums.push(['sha256', image.templateSha256]);
    if (image.templateMd5) sums.push(['md5', image.templateMd5]);
    if (sums.length === 0) return this.fetchUnverified(loc.url);
    const [kind, sum] = sums[0]!;
    const hex = sum.toString('hex');
    if (!this.ctx) {
      const cached = await this.cache.lookup('templates', kind, hex);
      if (cached) return cached.path;
      throw new TemplateUnavailableError(where, 'template is not in the cache and --offline is set (use --template FILE)');
    }
    // Resumable: what a run that ended before the template was whole had downloaded is where this one goes on from.
    let started = await this.cache.begin('templates', kind, hex, undefined, true);
    if ('copy' in started && matches && !(await matches(started.copy.path))) {
      // Damaged on the disk since (a bad sector, a truncation): every later run failed on it. Removed, fetched again.
      this.ctx.opts.log(`${started.copy.path}: the cached template no longer has its checksum: removed, fetching it again`);
      await this.cache.removeCopies([started.copy]);
      started = await this.cache.begin('templates', kind, hex, undefined, true);
    }
    if ('copy' in started) {
      this.counts.fromCache++;
      return started.copy.path;
    }
    const writer = started.writer;
    try {
      const copy = await this.downloadVerified(loc.url, writer, [kind, sum]);
      if (!copy) {
        await writer.discard();
        const proxy = this.ctx.http.proxyOf(loc.url);
        const through = proxy ? `, through the proxy ${proxy}` : '';
        throw new JigdoError(where, `downloaded template does not match the .jigdo's Template-${kind === 'md5' ? 'MD5' : 'SHA256'}Sum (also when asked again past caches${through}): wrong or corrupt template`);
      }
      this.counts.fetched++;
      return copy.path;
    } catch (err) {
      // Too large: dropped (kept, it would count against no limit and be refused again at every run). Not a template
      // (a captive portal's page): that says nothing of the bytes kept from before it, unless it wrote over them.
      // Anything else (a cut, a dead mirror, a full disk, the process's end) leaves them for the next run.
      const refused = err instanceof Error && err.cause instanceof RefusedDownload ? err.cause : undefined;
      if (refused && (refused.tooLarge || !(await startsAsTemplate(writer.fh).catch(() => false)))) await writer.discard();
      throw err;
    } finally {
      await writer.abort(); // (a resumable writer: its file stays, unless committed or discarded)
    }
  }

  /**
   * Downloads the template at `url` into the writer's file, going on from the bytes an earlier run left there, and
   * commits it if `sum` matches. Resumed bytes that do not start as a template does, or a resumed whole that does not
   * match, are dropped and the template downloaded once more from byte 0 (the latter past caches): they may be of
   * another version of the file.
   * Bytes left that are the whole template already (a run ended between its last byte and its commit) are committed
   * without a request: asked for the rest, the server says there is none (416), and it was downloaded again.
   */
  private async downloadVerified(url: string, writer: CacheWriter, sum: SumCheck): Promise<VerifiedCopy | undefined> {
    let from = (await writer.fh.stat()).size;
    if (from > 0 && !(await startsAsTemplate(writer.fh))) from = 0;
    const whole = from > 0 ? await writer.commit([sum]) : undefined;
    if (whole) return whole;
    let fresh = false;
    for (;;) {
      await writer.fh.truncate(from);
      from = await this.download(url, writer.fh, undefined, from, fresh); // (0 when the server sent it from byte 0 after all)
      // Only the checksum the cache names it by: a file that matches the other one alone (a .jigdo whose two sums
      // disagree) went under a SHA-256 name it does not have, and every later .jigdo naming that SHA-256 failed.
      const copy = await writer.commit([sum]);
      if (copy || (from === 0 && fresh)) return copy;
      if (from > 0) {
        this.ctx?.opts.log(`${url}: the template resumed from byte ${from} does not match its checksum: downloading it whole`);
        from = 0;
        // Past caches at once: the bytes kept may be of a download that was asked past caches and cut (the rest, from a
        // proxy's stale copy, made the mismatch), and a whole from that copy would fail too (three downloads, not one).
        fresh = true;
        continue;
      }
      // Whole and wrong: a caching proxy on the way may keep an older file of that name (a weekly build's template, at
      // the same URL every week). Once more, past caches; squid then asks the origin.
      // (On a terminal, the one line is the failure's, which says it was asked for again: TemplateDownloads.fetch.)
      if (this.ctx?.opts.logProgress) this.ctx.opts.log(`${url}: the template downloaded does not match its checksum: asking for it again past any cache (Cache-Control: no-cache)`);
      fresh = true;
    }
  }

  /** A template the .jigdo gives no checksum for: downloaded anew each time (nothing to check it against). */
  private async fetchUnverified(url: string): Promise<string> {
    if (!this.ctx) throw new TemplateUnavailableError(url, 'template is remote and --offline is set (use --template FILE)');
    const dir = path.join(this.cache.dir, 'templates', 'unverified');
    await makeDirs(dir);
    const final = path.join(dir, `${createHash('sha256').update(url).digest('hex').slice(0, 32)}.template`);
    const rules = await this.rules();
    const { file: tmp, fh, unlist } = await this.cache.tempFile();
    try {
      await this.download(url, fh, rules);
      const { size } = await fh.stat();
      await fh.close();
      // Counted against --cache-size like every template (one per URL ever read grew outside the limit).
      await this.cache.eviction.admit(size, () => rename(tmp, final));
      this.counts.fetched++;
      return final;
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw err;
    } finally {
      unlist();
    }
  }

  /**
   * Downloads the template at `url` into `fh` (from byte `from`: see downloadWhole, whose answer it returns); in a
   * daemon's log a line before and after (tens of MB take a while).
   */
  private async download(url: string, fh: FileHandle, rules?: BodyRules, from = 0, fresh = false): Promise<number> {
    const { ctx } = this;
    if (!ctx) throw new TemplateUnavailableError(url, 'template is remote and --offline is set (use --template FILE)');
    const t0 = Date.now();
    const say = ctx.opts.logProgress ? ctx.opts.log : () => undefined;
    say(from > 0 ? `fetching the template ${url} from byte ${from} (the bytes before it came in an earlier run)` : `fetching the template ${url}`);
    let kept: number;
    try {
      kept = await downloadWhole(ctx, url, fh, rules ?? (await this.rules(from)), from, fresh);
    } catch (err) {
      // Its URL does not give it (a 404, a dead server, a web page instead): `info` still answers from the .jigdo, and
      // every other command fails with the same line. (Our own disk's failure names the cache, and stays an error.)
      if (err instanceof JigdoError && !(err instanceof TemplateUnavailableError) && err.file === url) {
        const unavailable = new TemplateUnavailableError(url, err.problem);
        unavailable.cause = err; // (a RefusedDownload: fetch drops what was written)
        throw unavailable;
      }
      throw err;
    }
    say(`fetched the template ${url}: ${(await fh.stat()).size} bytes in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return kept;
  }

  /**
   * A template's size is not known before it is downloaded, but it goes into the cache: it may not be larger
   * than the cache may hold, and it must start as a template does (a server sending something else, however
   * long, is refused after its first bytes). `written`: the bytes of it an earlier run left, which the free space no
   * longer shows: counted as room (a resumed template was refused as too large on a disk that held it whole).
   */
  private async rules(written = 0): Promise<BodyRules> {
    const limit = Math.floor(await this.cache.downloadLimit(written)); // (5 % of a disk: a fraction of a byte)
    const shown = limit >= 1 << 20 ? `${(limit / (1 << 20)).toFixed(1)} MiB` : `${limit} bytes`;
    return { maxBytes: limit, maxWhy: `the cache's limit of ${shown} (--cache-size, capped by free disk space)`, magic: TEMPLATE_MAGIC, magicWhat: 'a jigdo template' };
  }
}

/** The file begins as every template does (bytes an earlier run left: anything else is not worth going on with). */
async function startsAsTemplate(fh: FileHandle): Promise<boolean> {
  const head = Buffer.alloc(TEMPLATE_MAGIC.length);
  const { bytesRead } = await fh.read(head, 0, head.length, 0);
  return bytesRead === head.length && head.equals(TEMPLATE_MAGIC);
}
