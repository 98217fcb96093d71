import type { ImageSession } from '../engine/session.js';
import type { ServeStats } from './handler.js';
import type { ServedImage } from './served-image.js';

/** What a running server tells `jigdofs status`: the mount's shape (so the same formatter prints it), plus the server's counters. */
export interface ServerStatus {
  mountpoint: string;
  pid: number;
  uptimeSeconds: number;
  rssBytes: number;
  images: unknown[];
  server: ServeStats & { url: string; activeClients: number; maxClients: number; draining: boolean };
  network?: unknown;
}

/** The per-image part of `status`, field for field as a mount reports it. */
function imageStatus(name: string, s: ImageSession): unknown {
  const counts = s.parts.counts();
  return {
    name,
    size: s.layout.size,
    jigdo: s.jigdo.location.kind === 'file' ? s.jigdo.location.path : s.jigdo.location.url,
    template: s.templatePath,
    parts: {
      total: counts.total,
      local: counts.byProvider.local ?? 0,
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
    recentErrors: s.parts.recentErrors,
  };
}

export interface StatusInput {
  url: string;
  images: ServedImage[];
  startedAt: number;
  stats: ServeStats;
  activeClients: number;
  maxClients: number;
  draining: boolean;
  extra?: () => unknown;
}

export async function serverStatus(i: StatusInput): Promise<ServerStatus> {
  const network = i.extra ? await i.extra() : undefined;
  return {
    mountpoint: i.url,
    pid: process.pid,
    uptimeSeconds: Math.round((Date.now() - i.startedAt) / 1000),
    rssBytes: process.memoryUsage().rss,
    images: i.images.map((img) => imageStatus(img.name, img.session)),
    server: { ...i.stats, url: i.url, activeClients: i.activeClients, maxClients: i.maxClients, draining: i.draining },
    ...(i.extra ? { network } : {}),
  };
}
