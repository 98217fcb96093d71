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
import { quotaCores, usableCores } from '../../src/util/cpu-count.js';
import { REPO } from '../helpers/cli.js';

let work: string;
let n = 0;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-cpu-count-'));
});
after(() => rm(work, { recursive: true, force: true }));

/** A cgroup tree: `files` maps paths under its root to contents; returns the root and a /proc/self/cgroup file. */
async function tree(procCgroup: string, files: Record<string, string>): Promise<{ root: string; proc: string }> {
  const root = path.join(work, `tree-${++n}`);
  for (const [file, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await writeFile(path.join(root, file), text);
  }
  await mkdir(root, { recursive: true });
  const proc = path.join(work, `cgroup-${n}`);
  await writeFile(proc, procCgroup);
  return { root, proc };
}

test('cgroup v2: cpu.max of the cgroup and of those above it, the least wins, rounded up', async () => {
  const t = await tree('0::/ci/job\n', {
    'ci/cpu.max': '400000 100000\n',
    'ci/job/cpu.max': '150000 100000\n',
  });
  assert.equal(quotaCores(t.root, t.proc), 2);
  const loose = await tree('0::/ci/job\n', { 'ci/cpu.max': '100000 100000\n', 'ci/job/cpu.max': 'max 100000\n' });
  assert.equal(quotaCores(loose.root, loose.proc), 1, 'the parent limits a child that sets none');
});

test('cgroup v2 in a container: its own limit at the root of the namespace, a host path that is not there skipped', async () => {
  const t = await tree('0::/../../system.slice/docker-abc.scope\n', { 'cpu.max': '50000 100000\n' });
  assert.equal(quotaCores(t.root, t.proc), 1, 'half a CPU: one');
});

test('cgroup v1: cfs quota over period under cpu or cpu,cpuacct; -1 is none', async () => {
  const t = await tree('12:pids:/x\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n', {
    'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '300000\n',
    'cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n',
  });
  assert.equal(quotaCores(t.root, t.proc), 3);
  const none = await tree('3:cpu:/\n', { 'cpu/cpu.cfs_quota_us': '-1\n', 'cpu/cpu.cfs_period_us': '100000\n' });
  assert.equal(quotaCores(none.root, none.proc), undefined);
});

test('no quota anywhere, no cgroup file: undefined; usableCores is then what the process may run on', async () => {
  const t = await tree('0::/user.slice\n', { 'user.slice/cpu.max': 'max 100000\n' });
  assert.equal(quotaCores(t.root, t.proc), undefined);
  assert.equal(quotaCores(t.root, path.join(work, 'no-such-file')), undefined);
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
