import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';

/**
 * The CPUs this process may use: the CPUs it may run on (`availableParallelism`, its affinity), capped by its cgroup's CPU
 * quota. libuv's count (Node 20: libuv 1.46) does not see the quota, so in a container started with `--cpus=1` on a
 * 16-core host it said 16: four hashing workers and two fetch threads shared one CPU's time, and make-image's DiskWait
 * saw CPU to spare that the quota did not give. Read once.
 */
export function usableCores(): number {
  cached ??= Math.max(1, Math.min(availableParallelism(), quotaCores() ?? Infinity));
  return cached;
}
let cached: number | undefined;

/**
 * The CPUs the quotas of this process's cgroup and of every cgroup above it allow, rounded up (1.5 CPUs: 2); undefined
 * when none sets one. cgroup v2 (`cpu.max`: "max 100000" or "150000 100000") and v1 (`cpu.cfs_quota_us`, -1 for none,
 * over `cpu.cfs_period_us`, under a `cpu` or `cpu,cpuacct` hierarchy). A cgroup directory that is not there (a path of
 * the host's, seen from a container's cgroup namespace) is skipped; the hierarchy's root is always looked at, since a
 * container's own limit sits there. `root` and `procCgroup` are for tests.
 */
export function quotaCores(root = '/sys/fs/cgroup', procCgroup = '/proc/self/cgroup'): number | undefined {
  let lines: string[];
  try {
    lines = readFileSync(procCgroup, 'utf8').split('\n');
  } catch {
    return undefined;
  }
  let least: number | undefined;
  const take = (cpus: number | undefined): void => {
    if (cpus !== undefined && (least === undefined || cpus < least)) least = cpus;
  };
  for (const line of lines) {
    const [, controllers, cgroup] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (cgroup === undefined) continue;
    if (controllers === '') {
      for (const dir of chain(root, cgroup)) take(v2Limit(dir));
    } else if (controllers!.split(',').includes('cpu')) {
      for (const mount of ['cpu', 'cpu,cpuacct', 'cpuacct,cpu']) for (const dir of chain(path.join(root, mount), cgroup)) take(v1Limit(dir));
    }
  }
  return least;
}

/** The cgroup's directory and every one above it up to the hierarchy's root. */
function chain(base: string, cgroup: string): string[] {
  const dirs: string[] = [];
  for (let p = path.posix.normalize(`/${cgroup}`); ; p = path.posix.dirname(p)) {
    dirs.push(path.join(base, p));
    if (p === '/') return dirs;
  }
}

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function cpus(quota: number, period: number): number | undefined {
  return Number.isFinite(quota) && Number.isFinite(period) && quota > 0 && period > 0 ? Math.max(1, Math.ceil(quota / period)) : undefined;
}

function v2Limit(dir: string): number | undefined {
  const [quota, period] = (read(path.join(dir, 'cpu.max')) ?? '').split(/\s+/);
  return quota === undefined || quota === 'max' ? undefined : cpus(Number(quota), Number(period ?? 100000));
}

function v1Limit(dir: string): number | undefined {
  const quota = read(path.join(dir, 'cpu.cfs_quota_us'));
  const period = read(path.join(dir, 'cpu.cfs_period_us'));
  return quota === undefined || period === undefined ? undefined : cpus(Number(quota), Number(period));
}
