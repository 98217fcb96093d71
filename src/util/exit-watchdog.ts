import { spawn } from 'node:child_process';

/** How long a daemon (a mount's, `serve`) may take from the start of its shutdown to its exit before it is killed. */
export const SHUTDOWN_GRACE_SECONDS = 15;

/**
 * Makes sure a stopping daemon ends. A source on a file system that no longer answers (a hung NFS server, a
 * stopped FUSE daemon: a --scan or --local folder there) leaves a libuv thread waiting in the kernel for good;
 * Node joins those threads on exit, so `process.exit` itself would never return and a mount's daemon would
 * outlive its mount, a server its stop. Only SIGKILL ends such a process (the kernel's wait is killable).
 *
 * The watchdog is a small process outside ours, started when the shutdown starts, holding one end of a pipe
 * whose other end only this process holds (libuv makes its pipes close-on-exec): when this process is gone,
 * the pipe ends and so does the watchdog, so it can never kill a reused pid. If the pipe is still open after
 * `graceSeconds`, it writes "WHO did not end within N s of WHEN (…): killed", stamped like the daemon's lines,
 * to our stderr (the daemon's log) and kills this process. It runs in its own session: a Ctrl-C on a foreground daemon's terminal does not end it.
 */
export function armExitWatchdog(who: string, when: string, graceSeconds = SHUTDOWN_GRACE_SECONDS): void {
  const message = `${who} did not end within ${graceSeconds} s of ${when} (a source on a file system that does not answer?): killed`;
  // SIGPIPE ignored: a daemon's stderr may be a relay that is gone (cli/spare-daemon.ts), and the kill must still come.
  const script = 'trap "" PIPE; timeout "$1" cat > /dev/null; [ $? -eq 124 ] || exit 0; printf "jigdofs: %s %s\\n" "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$2" >&2; kill -9 "$3"';
  try {
    const child = spawn('sh', ['-c', script, 'jigdofs-exit-watchdog', String(graceSeconds), message, String(process.pid)], {
      stdio: ['pipe', 'ignore', 'inherit'],
      detached: true,
    });
    child.on('error', () => undefined); // no sh: nothing to watch with, the shutdown goes on as before
    child.stdin.on('error', () => undefined);
    child.unref();
    // A pipe is a net.Socket: it must not keep our event loop alive; only our exit closes it.
    (child.stdin as unknown as { unref(): void }).unref();
  } catch {
    // spawn can throw synchronously (out of processes or file descriptors): shutting down matters more
  }
}
