/**
 * util/cpu-count.ts: the CPUs a cgroup quota allows, read from cgroup trees laid out in a temporary folder as the
 * kernel lays them out (v2's cpu.max, v1's cfs quota and period), and from a real cgroup where this machine lets us make
 * one (root, a writable `cpu` hierarchy): a process put in it with a quota of half a CPU counts one.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { quotaCores, usableCores, type CgroupFiles } from '../../src/util/cpu-count.js';
import { REPO } from '../helpers/cli.js';

let work: string;
let n = 0;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-cpu-count-'));
});
after(() => rm(work, { recursive: true, force: true }));

/**
 * A cgroup hierarchy laid out under a temporary folder: `files` maps paths under it to contents. `mounts` are mountinfo's
 * root, type and super options of each mount of it (all at that folder); returns the files quotaCores reads.
 */
async function tree(procCgroup: string, mounts: Array<[root: string, type: string, options: string]>, files: Record<string, string>): Promise<CgroupFiles> {
  const at = path.join(work, `tree ${++n}`); // a space: mountinfo writes it as \040
  await mkdir(at, { recursive: true });
  for (const [file, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(at, file)), { recursive: true });
    await writeFile(path.join(at, file), text);
  }
  const escaped = at.replaceAll(' ', '\\040');
  const mountinfo = [
    `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755`,
    ...mounts.map(([root, type, options], i) => `${40 + i} 31 0:${40 + i} ${root} ${escaped} rw,relatime shared:9 - ${type} ${type} ${options}`),
  ];
  const files_ = { procCgroup: path.join(work, `cgroup-${n}`), mountinfo: path.join(work, `mountinfo-${n}`) };
  await writeFile(files_.procCgroup, procCgroup);
  await writeFile(files_.mountinfo, `${mountinfo.join('\n')}\n`);
  return files_;
}

test('cgroup v2: cpu.max of the cgroup and of those above it, the least wins, rounded up', async () => {
  const t = await tree('0::/ci/job\n', [['/', 'cgroup2', 'rw']], {
    'ci/cpu.max': '400000 100000\n',
    'ci/job/cpu.max': '150000 100000\n',
  });
  assert.equal(quotaCores(t), 2);
  const loose = await tree('0::/ci/job\n', [['/', 'cgroup2', 'rw']], { 'ci/cpu.max': '100000 100000\n', 'ci/job/cpu.max': 'max 100000\n' });
  assert.equal(quotaCores(loose), 1, 'the parent limits a child that sets none');
});

test('cgroup v2 in a container: its own limit at the top of the namespace, a host path that is not there skipped', async () => {
  const t = await tree('0::/../../system.slice/docker-abc.scope\n', [['/', 'cgroup2', 'rw']], { 'cpu.max': '50000 100000\n' });
  assert.equal(quotaCores(t), 1, 'half a CPU: one');
});

test('cgroup v1: cfs quota over period in the hierarchy with the cpu controller, however its mount is named; -1 is none', async () => {
  const t = await tree('12:pids:/x\n4:cpuset,cpu,cpuacct:/build/abc\n1:name=systemd:/\n', [['/', 'cgroup', 'rw,cpuset,cpu,cpuacct']], {
    'build/abc/cpu.cfs_quota_us': '300000\n',
    'build/abc/cpu.cfs_period_us': '100000\n',
  });
  assert.equal(quotaCores(t), 3);
  const none = await tree('3:cpu:/\n', [['/', 'cgroup', 'rw,cpu']], { 'cpu.cfs_quota_us': '-1\n', 'cpu.cfs_period_us': '100000\n' });
  assert.equal(quotaCores(none), undefined);
  const otherController = await tree('3:cpuacct:/\n', [['/', 'cgroup', 'rw,cpuacct']], { 'cpu.cfs_quota_us': '100000\n', 'cpu.cfs_period_us': '100000\n' });
  assert.equal(quotaCores(otherController), undefined, 'only the cpu controller sets a quota');
});

test('cgroup v1 in a container without a cgroup namespace: the mount shows /docker/ID at its top, a nested cgroup below', async () => {
  const t = await tree('4:cpu,cpuacct:/docker/abc/nested\n', [['/docker/abc', 'cgroup', 'rw,cpu,cpuacct']], {
    'cpu.cfs_quota_us': '400000\n',
    'cpu.cfs_period_us': '100000\n',
    'nested/cpu.cfs_quota_us': '200000\n',
    'nested/cpu.cfs_period_us': '100000\n',
  });
  assert.equal(quotaCores(t), 2);
});

test('no quota anywhere, no cgroup file: undefined; usableCores is then what the process may run on', async () => {
  const t = await tree('0::/user.slice\n', [['/', 'cgroup2', 'rw']], { 'user.slice/cpu.max': 'max 100000\n' });
  assert.equal(quotaCores(t), undefined);
  assert.equal(quotaCores({ ...t, procCgroup: path.join(work, 'no-such-file') }), undefined);
  assert.ok(usableCores() >= 1 && usableCores() <= availableParallelism());
});

/** A writable cgroup v1 `cpu` hierarchy or a v2 one with the cpu controller, when we may make cgroups in it. */
function cgroupParent(): { dir: string; v2: boolean } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  if (existsSync('/sys/fs/cgroup/cpu/cpu.cfs_period_us')) return { dir: '/sys/fs/cgroup/cpu', v2: false };
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return { dir: '/sys/fs/cgroup', v2: true };
  return undefined;
}

test('a process in a real cgroup with a quota of half a CPU counts one CPU', (t) => {
  const parent = cgroupParent();
  if (!parent) return t.skip('needs root and a cgroup hierarchy with the cpu controller');
  if (availableParallelism() < 2) return t.skip('one CPU: a count of one says nothing about the quota');
  const dir = path.join(parent.dir, `jigdofs-test-${process.pid}`);
  try {
    mkdirSync(dir);
    if (parent.v2) writeFileSync(path.join(dir, 'cpu.max'), '50000 100000');
    else writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), '50000');
  } catch (err) {
    try {
      rmdirSync(dir);
    } catch {
      // not made
    }
    return t.skip(`cannot make a cgroup with a CPU quota here: ${(err as Error).message}`);
  }
  try {
    const module = path.join(REPO, 'src', 'util', 'cpu-count.ts');
    const script = `import('${module}').then((m) => console.log(m.usableCores()))`;
    // The shell moves itself into the cgroup, then becomes node: the count is read inside it.
    const r = spawnSync('sh', ['-c', `echo $$ > ${dir}/cgroup.procs && exec node --import tsx -e "${script}"`], { cwd: REPO, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '1');
  } finally {
    rmdirSync(dir);
  }
});
