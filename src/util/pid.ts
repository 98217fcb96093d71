import { existsSync, readFileSync } from 'node:fs';

/**
 * The process exists and has not ended (possibly another user's: EPERM still means it runs). A zombie
 * (ended, not yet reaped: a daemon whose parent is gone waits for init to reap it) counts as ended.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/PID/stat: "PID (comm) STATE ..."; comm may hold spaces and parentheses, so split at the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && existsSync('/proc/self/stat')) return false; // ended just now
    return true; // no /proc: kill(0) is all we know
  }
}
