import { ownerDead, ownerTag, pidAlive } from '../util/pid.js';

/**
 * The names of `inflated/ID/`, the spill files of huge template chunks (sources/template-data.ts). A finished one is a
 * cache file like a part: counted against `--cache-size` by the blocks it takes (it is sparse) and evicted least
 * recently used (cache-eviction.ts); a temporary one belongs to the process writing it until that process ends.
 */
export const SPILL_DIR = 'inflated';

/** A finished spill: named after its chunk's index, length and compressed bytes' digest (32 hex digits). */
export function spillName(index: number, length: number, digest: string): string {
  return `chunk-${index}-${length}-${digest}`;
}

export const FINISHED_SPILL = /^chunk-\d+-\d+-[0-9a-f]{32}$/;

/** Makes the temporary names of one process unique (two sessions may start a spill in one millisecond). */
let serial = 0;

/**
 * The temporary name a spill is written under: `FINAL.HOSTTAG-PID-TIMESERIAL.tmp`. The owner tag says which host's
 * process writes it, so that on a cache shared over NFS no host takes another's live pid for a dead one.
 */
export function spillTempName(final: string): string {
  return `${final}.${ownerTag()}-${Date.now()}${++serial}.tmp`;
}

/**
 * A file of a spill folder nobody will finish or take: a temporary spill whose process (of this host) has ended, one
 * named by a build before owner tags (`.PID.TIME.tmp`) whose pid has ended, or a finished spill of a build before
 * digests (`chunk-INDEX-LEN`: never taken now).
 */
export function deadSpillFile(name: string): boolean {
  const tagged = /\.([0-9a-f]{8}-\d+-\d+)\.tmp$/.exec(name);
  if (tagged) return ownerDead(tagged[1]!);
  const old = /\.(\d+)\.\d+\.tmp$/.exec(name);
  if (old) return Number(old[1]) !== process.pid && !pidAlive(Number(old[1]));
  return /^chunk-\d+-\d+$/.test(name);
}
