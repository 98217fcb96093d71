import type { ImageSession } from './session.js';

/** What `jigdofs status` shows of one open image, the same for a mount and a server. */
export function sessionStatus(name: string, s: ImageSession): unknown {
  const counts = s.parts.counts();
  return {
    name,
    size: s.layout.size,
    jigdo: s.jigdo.location.kind === 'file' ? s.jigdo.location.path : s.jigdo.location.url,
    template: s.templatePath,
    parts: {
      total: counts.total,
      local: counts.byProvider.local ?? 0,
      fromImages: counts.byProvider.image ?? 0,
      verified: counts.verified,
      missing: counts.missing,
      failed: counts.failed,
      inFlight: counts.inFlight,
      byProvider: counts.byProvider,
    },
    bytesServed: s.reader.stats.bytesServed,
    reads: s.reader.stats.reads,
    readErrors: s.reader.stats.errors,
    cacheHits: { readahead: s.reader.stats.readaheadHits, templateChunks: s.raw.stats.cacheHits, hashIndex: s.index.stats.hits },
    templateBytesInflated: s.raw.stats.bytesInflated,
    partBytesRead: s.parts.stats.bytesRead,
    /** Local files and image regions hashed by this process (0 when the hash index knew them all). */
    localHashed: s.local.stats.hashed,
    /** Parts found inside old disc images given to --scan, per image (issue 10). */
    fromImages: s.local.images.summary(),
    recentErrors: s.parts.recentErrors,
  };
}
