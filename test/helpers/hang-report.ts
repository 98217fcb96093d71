import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

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
    if (stack.trim()) lines.push(`  its kernel stack:\n      ${stack.trim().split('\n').slice(0, 16).join('\n      ')}`);
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
      const kernel = !idle && stack.trim() ? `\n      ${stack.trim().split('\n').slice(0, 12).join('\n      ')}` : '';
      const key = `${comm.trim()} ${state} ${wchan || '-'}${kernel}`;
      alike.set(key, [...(alike.get(key) ?? []), tid]);
    }
    for (const [key, ids] of alike) lines.push(`  ${ids.length}× (${ids.slice(0, 4).join(' ')}${ids.length > 4 ? ' …' : ''}) ${key}`);
  }
  return lines.join('\n');
}

/** The pid the mount at `mnt` names in /proc/mounts (`jigdofs-PID`, src/fuse/mount-source.ts), if any. */
export async function mountDaemonPid(mnt: string): Promise<number | undefined> {
  const text = await readFile('/proc/mounts', 'utf8').catch(() => '');
  const unescape = (f: string) => f.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const entry = text
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => unescape(f[1] ?? '') === mnt)
    .at(-1);
  const m = /^jigdofs-(\d+)$/.exec(entry?.[0] ?? '');
  return m ? Number(m[1]) : undefined;
}
