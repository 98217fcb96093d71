import type { Command } from 'commander';
import { quoted } from '../../format/byte-string.js';
import { askControl, askDetached } from '../../fuse/control-client.js';
import { NoDaemon } from '../../fuse/control-files.js';
import type { DetachedStatus } from '../../fuse/detach.js';
import { resolveMountpoint } from '../../fuse/mounts.js';
import { unservedMountProblem } from '../../fuse/mountpoint.js';
import type { NetworkStats } from '../../network/network.js';
import { controlKey, looksLikeServer, otherServerKeys, parseServerAddress } from '../../http/address.js';

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;

interface ImageStatus {
  name: string;
  size: number;
  parts: { total: number; local: number; verified: number; missing: number; failed: number; inFlight: number; byProvider: Record<string, number>; fromImages?: number };
  /** Parts found inside old disc images, per image. */
  fromImages?: Array<{ image: string; parts: number; bytes: number }>;
  bytesServed: number;
  reads: number;
  readErrors: number;
  cacheHits: Record<string, number>;
  recentErrors: string[];
}

export interface Status {
  mountpoint: string;
  pid: number;
  uptimeSeconds: number;
  rssBytes: number;
  /** A mount's reads bypass the kernel's page cache (`mount --direct-io`). */
  directIo?: boolean;
  images: ImageStatus[];
  /** A mount detached lazily whose daemon still serves what uses it (fuse/detach.ts). */
  detached?: DetachedStatus;
  /** The other detached daemons of the path that still serve, when status shows the newest (mountStatus). */
  otherDetached?: Array<DetachedStatus & { pid: number }>;
  network?: NetworkStats;
  /** Present for `jigdofs serve`. */
  server?: { url: string; requests: number; activeClients: number; maxClients: number; bytesSent: number; aborted: number; clientsGone: number; timedOut?: number; connectionsDropped?: number; byStatus: Record<string, number>; draining: boolean };
}

/**
 * The status of a mountpoint (its real path: a symlink to it finds it too) or of a server (`http://HOST:PORT/`,
 * `HOST:PORT`: the first of its keys that a server answers; else the "no daemon" of the address as typed).
 */
async function targetStatus(arg: string): Promise<Status> {
  const server = looksLikeServer(arg) ? parseServerAddress(arg) : undefined;
  if (!server) {
    const mnt = await resolveMountpoint(arg);
    // A stopped or frozen daemon would be asked in vain (5 s, then "no answer"), a gone one named only as "no daemon"
    // (unless an earlier daemon of the path, detached lazily, still serves: mountStatus shows it).
    const problem = await unservedMountProblem(mnt);
    if (problem && !(problem.stale && (await detachedDaemons(mnt)).length > 0)) throw new Error(problem.message);
    return mountStatus(mnt);
  }
  try {
    return await mountStatus(controlKey(server));
  } catch (err) {
    if (!(err instanceof NoDaemon)) throw err;
    // (What goes wrong with another key, a socket that does not answer, say, is not what the user asked about.)
    for (const key of await otherServerKeys(server)) {
      const found = await mountStatus(key).catch(() => undefined);
      if (found) return found;
    }
    throw err;
  }
}

/**
 * The status of the daemon of `target` (a mountpoint's real path, or a server's key). When nothing of ours is mounted
 * there, a daemon whose mount there was detached lazily and still serves is the one shown (the newest, naming the
 * others): after `umount -l` it may serve a loop device for days. A new mount on the path wins over them. With
 * neither, the mount's own "no daemon" stands.
 */
export async function mountStatus(target: string): Promise<Status> {
  try {
    const status = (await askControl(target, 'status')) as Status;
    // Earlier mounts of the path, detached and still serving (a loop device on one, say), are named beside it.
    const earlier = await detachedDaemons(target);
    return earlier.length === 0 ? status : { ...status, otherDetached: earlier.map(asOther) };
  } catch (err) {
    if (!(err instanceof NoDaemon)) throw err;
    const detached = await detachedDaemons(target);
    const [newest, ...others] = detached.sort((a, b) => b.detached.since.localeCompare(a.detached.since));
    if (!newest) throw err;
    return others.length === 0 ? newest : { ...newest, otherDetached: others.map(asOther) };
  }
}

/** A detached daemon as `otherDetached` names it beside the status shown. */
const asOther = (s: Status & { detached: DetachedStatus }): DetachedStatus & { pid: number } => ({ pid: s.pid, ...s.detached });

/** The statuses of the daemons of `mnt` whose mount was detached and that still serve (control.ts askDetached). */
export async function detachedDaemons(mnt: string): Promise<Array<Status & { detached: DetachedStatus }>> {
  return ((await askDetached(mnt, 'status')) as Status[]).filter((s): s is Status & { detached: DetachedStatus } => typeof s?.detached === 'object');
}

/** `1 open file`, `2 open files`. */
export const openFilesText = (n: number): string => `${n} open ${n === 1 ? 'file' : 'files'}`;

/** The line `status` adds for a detached daemon: since when, how, and what it still serves. */
function detachedLines(s: Status): string[] {
  const d = s.detached;
  const others = (s.otherDetached ?? []).map((o) => `pid ${o.pid} (${openFilesText(o.openFiles)}, since ${o.since})`);
  const otherLine = others.length ? [`  other detached daemons of this path still serving: ${others.join(', ')}`] : [];
  if (!d) return otherLine; // a mount of the path, and earlier ones detached beside it
  const ago = Math.max(0, Math.round((Date.now() - Date.parse(d.since)) / 1000));
  const uses = d.openFiles > 0 ? openFilesText(d.openFiles) : 'no file open (a working folder in it, say)';
  return [`  DETACHED since ${d.since} (${ago} s ago; ${d.why}): not mounted; served until nothing uses it: ${uses}`, ...otherLine];
}

/**
 * `status` as text. Image names, recent errors and a mirror's last error come from .jigdo files, templates and servers:
 * each line goes through `quoted`, so none can write terminal controls (the daemon's JSON keeps them exact for --json).
 */
export function formatStatus(s: Status): string {
  const lines = [`${s.mountpoint}: jigdofs ${s.server ? 'server' : 'daemon'} pid ${s.pid}, up ${s.uptimeSeconds} s, RSS ${mb(s.rssBytes)}${s.directIo ? ', direct I/O' : ''}`];
  lines.push(...detachedLines(s));
  const v = s.server;
  if (v) {
    const codes = Object.entries(v.byStatus).map(([k, n]) => `${k} ${n}`).join(', ');
    lines.push(`  http: ${v.requests} requests (${codes || 'none'}), ${v.activeClients} of ${v.maxClients} clients active, ${mb(v.bytesSent)} sent, ${v.aborted} cut off, ${v.clientsGone} clients gone${v.timedOut ? `, ${v.timedOut} timed out (--send-timeout)` : ''}${v.connectionsDropped ? `, ${v.connectionsDropped} connections dropped (over the cap)` : ''}${v.draining ? '; DRAINING' : ''}`);
  }
  for (const img of s.images) {
    const p = img.parts;
    lines.push(
      `  ${img.name}: ${mb(img.size)}`,
      `    parts: ${p.total} total, ${p.local} local, ${p.fromImages ?? 0} from old images, ${p.verified} verified, ${p.missing} missing, ${p.failed} failed, ${p.inFlight} in flight`,
      ...(img.fromImages ?? []).map((u) => `    from ${u.image}: ${u.parts.toLocaleString('en-US')} parts, ${mb(u.bytes)}`),
      `    served: ${mb(img.bytesServed)} in ${img.reads} reads, ${img.readErrors} errors; cache hits: ${Object.entries(img.cacheHits).map(([k, v]) => `${k} ${v}`).join(', ')}`,
      ...(img.recentErrors.length ? ['    recent errors:', ...img.recentErrors.slice(-5).map((e) => `      ${e}`)] : []),
    );
  }
  if (s.network) lines.push(...formatNetwork(s.network));
  return lines.map(quoted).join('\n');
}

/** The network part of `status`: fetches, the cache, one line per mirror used. */
function formatNetwork(n: NetworkStats): string[] {
  const p = n.parts;
  const c = n.cache;
  const lines = [
    `  network${n.offline ? ' (offline)' : ''}: ${p.fetched} parts fetched (${mb(p.bytes)}), ${p.inFlight} in flight, ${p.failed} failed, ` +
      `${p.mismatches} checksum mismatches; ${mb(p.bytesDownloaded)} downloaded` +
      (p.fromOtherProcess ? `; ${p.fromOtherProcess} fetched by another process` : ''),
    `    cache ${c.dir}: ${c.files} files, ${mb(c.bytes)}${c.limit ? ` of ${mb(c.limit)}` : ''}; ${c.hits} hits, ${c.misses} misses, ${c.evictions} evicted`,
  ];
  if (n.templates.fetched || n.templates.fromCache) lines.push(`    templates: ${n.templates.fetched} fetched, ${n.templates.fromCache} from the cache`);
  for (const m of n.mirrors) {
    const kinds = Object.entries(m.failuresByKind).map(([k, v]) => `${k} ${v}`).join(', ');
    lines.push(
      `    mirror ${m.mirror}: ${mb(m.bytes)} in ${m.requests} requests (${m.active} active), ${mb(m.speed)}/s, ${m.latencyMs.toFixed(0)} ms to headers; ` +
        `${m.failures} failures${kinds ? ` (${kinds})` : ''}, ${m.demotions} demotions` +
        (m.limit !== undefined ? `; its host takes ${m.limit} request(s) at once from us (it answered busy beyond)` : '') +
        (m.down ? `; DOWN (not asked) until ${m.downUntil ?? '?'}, then probed${m.downWhy ? `: ${m.downWhy}` : ''}` : '') +
        (m.demoted ? `; DEMOTED until ${m.demotedUntil ?? '?'}${m.demotedWhy ? `: ${m.demotedWhy}` : ''}` : '') +
        (m.lastError ? `; last error: ${m.lastError}` : ''),
    );
  }
  return lines;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('show what a running mount or server has: parts local, verified, missing, bytes served, errors')
    .argument('<mountpoint>', 'a mountpoint, or a server as http://HOST:PORT/')
    .option('--json', 'print JSON for scripts')
    .action(async (mnt: string, flags: { json?: boolean }) => {
      const status = await targetStatus(mnt);
      process.stdout.write(flags.json ? `${JSON.stringify(status, null, 2)}\n` : `${formatStatus(status)}\n`);
    });
}
