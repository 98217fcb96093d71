import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { unescapeMountField } from './mount-field.js';

/**
 * The CPUs this process may use: the CPUs it may run on (`availableParallelism`, its affinity), capped by its cgroup's CPU
 * quota. Node 20's count (libuv 1.46; libuv sees the quota from 1.49 on) does not see the quota, so in a container
 * started with `--cpus=1` on a 16-core host it said 16: four hashing workers and two fetch threads shared one CPU's time,
 * and make-image's DiskWait saw CPU to spare that the quota did not give. Read once.
 */
export function usableCores(): number {
  cached ??= Math.max(1, Math.min(availableParallelism(), quotaCores() ?? Infinity));
  return cached;
}
let cached: number | undefined;

/** Where the kernel says which cgroups the process is in and where their hierarchies are mounted (tests give others). */
export interface CgroupFiles {
  procCgroup: string;
  mountinfo: string;
}
const SELF: CgroupFiles = { procCgroup: '/proc/self/cgroup', mountinfo: '/proc/self/mountinfo' };

/** A mount of a cgroup hierarchy: the hierarchy's path shown at its root, and where. */
interface CgroupMount {
  root: string;
  at: string;
}

/**
 * The CPUs the quotas of this process's cgroup and of every cgroup above it allow, rounded up (1.5 CPUs: 2, which two
 * threads can use); undefined when none sets one. cgroup v2 (`cpu.max`: "max 100000" or "150000 100000") and v1
 * (`cpu.cfs_quota_us`, -1 for none, over `cpu.cfs_period_us`, in the hierarchy with the `cpu` controller, whatever its
 * mount is named). The hierarchies are found in mountinfo, whose root field says what part of the hierarchy a mount
 * shows: a container without a cgroup namespace sees its own cgroup, `/docker/ID`, at the mount's top. Cgroups above
 * what a mount shows are not visible and not counted.
 */
export function quotaCores(files: CgroupFiles = SELF): number | undefined {
  const cgroups = read(files.procCgroup)?.split('\n');
  const mounts = read(files.mountinfo)?.split('\n');
  if (!cgroups || !mounts) return undefined;
  const v1: CgroupMount[] = [];
  const v2: CgroupMount[] = [];
  for (const line of mounts) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash < 0 || f.length < dash + 4) continue;
    const mount = { root: unescapeMountField(f[3]!), at: unescapeMountField(f[4]!) };
    if (f[dash + 1] === 'cgroup2') v2.push(mount);
    else if (f[dash + 1] === 'cgroup' && f[dash + 3]!.split(',').includes('cpu')) v1.push(mount);
  }
  let least: number | undefined;
  const take = (cpus: number | undefined): void => {
    if (cpus !== undefined && (least === undefined || cpus < least)) least = cpus;
  };
  for (const line of cgroups) {
    const [, controllers, cgroup] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (cgroup === undefined) continue;
    if (controllers === '') for (const m of v2) for (const dir of chain(m, cgroup)) take(v2Limit(dir));
    else if (controllers!.split(',').includes('cpu')) for (const m of v1) for (const dir of chain(m, cgroup)) take(v1Limit(dir));
  }
  return least;
}

/** The cgroup's directory under the mount and every one above it up to the mount's top. */
function chain(mount: CgroupMount, cgroup: string): string[] {
  let rel = path.posix.normalize(`/${cgroup}`);
  if (mount.root !== '/') rel = rel === mount.root ? '/' : rel.startsWith(`${mount.root}/`) ? rel.slice(mount.root.length) : '/';
  const dirs: string[] = [];
  for (let p = rel; ; p = path.posix.dirname(p)) {
    dirs.push(path.join(mount.at, p));
    if (p === '/') return dirs;
  }
}

/** The file's text, or undefined where it cannot be read (no such cgroup file, no /proc). */
function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function cpus(quota: number, period: number): number | undefined {
  return Number.isFinite(quota) && Number.isFinite(period) && quota > 0 && period > 0 ? Math.max(1, Math.ceil(quota / period)) : undefined;
}

function v2Limit(dir: string): number | undefined {
  const [quota, period] = (read(path.join(dir, 'cpu.max'))?.trim() ?? '').split(/\s+/);
  return quota === undefined || quota === 'max' ? undefined : cpus(Number(quota), Number(period ?? 100000));
}

function v1Limit(dir: string): number | undefined {
  const quota = read(path.join(dir, 'cpu.cfs_quota_us'))?.trim();
  const period = read(path.join(dir, 'cpu.cfs_period_us'))?.trim();
  return quota === undefined || period === undefined ? undefined : cpus(Number(quota), Number(period));
}
