import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { daemonPid } from '../../src/fuse/mount-source.js';
import { mountsAt } from '../../src/fuse/mounts.js';

const run = promisify(execFile);

/** A kernel stack's first `frames` lines, indented under the line that names its thread or process. */
const indented = (stack: string, frames: number): string => `\n      ${stack.trim().split('\n').slice(0, frames).join('\n      ')}`;

/**
 * What the processes around a slow mount are doing, taken while it is slow (a report after the fact showed only
 * the daemon's log, which said nothing): every jigdofs, fusermount and node process with its state and kernel wait
 * channel, and each thread of the mount's daemon (`pid`) with its wait channel and, for root, its kernel stack.
 */
export async function hangReport(pid: number | undefined): Promise<string> {
  const ps = await run('ps', ['-eo', 'pid,ppid,stat,wchan:32,etimes,args', '--cols', '220']).then(
    (r) => r.stdout.split('\n').filter((l, i) => i === 0 || /jigdofs|fusermount|node /.test(l)),
    (err: Error) => [`ps: ${err.message}`],
  );
  const lines = ['processes:', ...ps];
  // A fusermount that runs for seconds waits in the kernel: where.
  for (const line of ps.filter((l) => /fusermount/.test(l))) {
    const stack = await readFile(`/proc/${line.trim().split(/\s+/)[0]}/stack`, 'utf8').catch(() => '');
    if (stack.trim()) lines.push(`  its kernel stack:${indented(stack, 16)}`);
  }
  if (pid !== undefined) {
    const tids = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
    lines.push(`daemon ${pid}: ${tids.length} threads, alike ones counted together`);
    const alike = new Map<string, string[]>();
    for (const tid of tids) {
      const at = (what: string) => readFile(`/proc/${pid}/task/${tid}/${what}`, 'utf8').catch(() => '');
      const [comm, wchan, stat, stack] = await Promise.all([at('comm'), at('wchan'), at('stat'), at('stack')]);
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '?';
      const idle = state === 'S' && /^(futex_do_wait|futex_wait_queue|do_epoll_wait|fuse_dev_do_read)$/.test(wchan);
      const kernel = !idle && stack.trim() ? indented(stack, 12) : '';
      const key = `${comm.trim()} ${state} ${wchan || '-'}${kernel}`;
      alike.set(key, [...(alike.get(key) ?? []), tid]);
    }
    for (const [key, ids] of alike) lines.push(`  ${ids.length}× (${ids.slice(0, 4).join(' ')}${ids.length > 4 ? ' …' : ''}) ${key}`);
  }
  return lines.join('\n');
}

/** The pid the mount at `mnt` names in /proc/mounts (its daemon: src/fuse/mount-source.ts), if any. */
export async function mountDaemonPid(mnt: string): Promise<number | undefined> {
  const top = await mountsAt(mnt).then((entries) => entries.at(-1), () => undefined);
  return top && daemonPid(top.source);
}
