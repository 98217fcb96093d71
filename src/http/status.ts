import { sessionStatus } from '../engine/session-status.js';
import type { ServeStats } from './handler.js';
import type { ServedImage } from './served-image.js';

/** What a running server tells `jigdofs status`: the mount's shape (so the same formatter prints it), plus the server's counters. */
export interface ServerStatus {
  mountpoint: string;
  pid: number;
  uptimeSeconds: number;
  rssBytes: number;
  images: unknown[];
  server: ServeStats & { url: string; activeClients: number; maxClients: number; maxConnections: number; draining: boolean };
  network?: unknown;
}

export interface StatusInput {
  url: string;
  images: ServedImage[];
  startedAt: number;
  stats: ServeStats;
  activeClients: number;
  maxClients: number;
  maxConnections: number;
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
    images: i.images.map((img) => sessionStatus(img.name, img.session)),
    server: { ...i.stats, url: i.url, activeClients: i.activeClients, maxClients: i.maxClients, maxConnections: i.maxConnections, draining: i.draining },
    ...(i.extra ? { network } : {}),
  };
}
