import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';

/**
 * The daemon of a background `jigdofs mount`, started before the CLI has loaded (issue 11 item 5: `mount`
 * returns sooner). Starting node is most of a daemon's start-up (0.12 s of CPU on the slowest host measured)
 * and the parent used to pay its own start, load the CLI and check the mountpoint first: ~0.2 s in a row.
 * bin/jigdofs now starts the daemon ("the spare") at once when its arguments are a background mount, and the
 * spare starts node and loads the CLI while the parent does its checks. The spare waits for the parent's go
 * before it does anything (reads the .jigdo, creates cache files, mounts), so a mount the parent refuses has
 * not been touched; without a go (the parent refused, failed or died) the spare exits.
 *
 * Its output: the daemon's stdout and stderr (its log, and whatever libfuse, fusermount or node print) belong
 * in the log file, which is known only once the parent has read the settings. Node cannot redirect a running
 * process's descriptors, so both go to a relay (sh, then `cat >> LOG`) that is started first, learns the log
 * file's name from the parent and lives as long as the daemon writes.
 *
 * Kept free of other imports: bin/jigdofs loads this before the rest of the CLI.
 */

/** Set in the spare's environment (and removed by it at once): wait for the parent's go. */
const SPARE_ENV = 'JIGDOFS_SPARE_DAEMON';

/**
 * The relay reads the log file's name from fd 3 (empty: exit; the `.` keeps a name's trailing newlines, which `$(…)`
 * would strip), then appends its stdin to that file.
 */
const RELAY_SCRIPT = 'umask 077; log=$(cat <&3 && echo .) && log=${log%.} && [ -n "$log" ] || exit 0; exec cat >> "$log" 3<&-';

/** The go message, parent to spare. */
interface Go {
  jigdofsGo: true;
}

export interface SpareDaemon {
  /**
   * Its output goes to `logFile` (created by the caller, private) and it may mount: returns the daemon
   * (IPC on), or undefined (then cancelled) when the spare is gone already.
   */
  start(logFile: string | Buffer): ChildProcess | undefined;
  /** Not needed after all: it and its relay end, having done nothing. */
  cancel(): void;
}

let spare: SpareDaemon | undefined;

/**
 * Whether `args` (after the script) are a background mount: `mount` with neither -f/--foreground nor help.
 * A guess is harmless either way: the CLI uses the spare only where it would spawn the daemon, and cancels it
 * anywhere else. Arguments Node could not decode (exact-argv.ts) are left to the CLI's own spawn.
 */
export function isBackgroundMount(args: string[]): boolean {
  if (args[0] !== 'mount' || args.some((a) => a.includes('\ufffd'))) return false;
  const end = args.indexOf('--');
  const options = end < 0 ? args : args.slice(0, end);
  return !options.some((a) => a === '--foreground' || a === '--help' || /^-[^-]*[fhV]/.test(a));
}

/** Called by bin/jigdofs first thing: starts the spare when the arguments are a background mount. */
export function startSpareDaemon(argv: string[] = process.argv): void {
  if (process.env[SPARE_ENV] !== undefined || !argv[1] || !isBackgroundMount(argv.slice(2))) return;
  const relay = spawn('/bin/sh', ['-c', RELAY_SCRIPT, 'jigdofs-log-relay'], { stdio: ['pipe', 'ignore', 'ignore', 'pipe'], detached: true });
  relay.on('error', () => undefined);
  if (relay.pid === undefined) return; // no /bin/sh: the CLI spawns its daemon as before
  const output = relay.stdin!;
  const name = relay.stdio[3] as Writable;
  name.on('error', () => undefined); // a relay gone: start() sees it, or the daemon's output is lost (not the mount)
  // --foreground right after `mount`: never the value of an option whose value the user left out (the spare then
  // fails to parse exactly as the parent does).
  const child = spawn(process.execPath, [...process.execArgv, argv[1], argv[2]!, '--foreground', ...argv.slice(3)], {
    env: { ...process.env, [SPARE_ENV]: '1' },
    detached: true,
    stdio: ['ignore', output, output, 'ipc'],
  });
  child.on('error', () => undefined); // could not start (out of processes): start() sees no pid and falls back
  output.destroy(); // the spare has its own copy; the relay ends when the spare's copy closes
  relay.unref();
  const alive = (p: ChildProcess) => p.pid !== undefined && p.exitCode === null && p.signalCode === null;
  spare = {
    start(logFile) {
      if (!alive(child) || !child.connected || !alive(relay) || !name.writable) {
        this.cancel();
        return undefined;
      }
      name.end(logFile);
      child.send({ jigdofsGo: true } satisfies Go, () => undefined); // a spare gone meanwhile: its exit event tells
      return child;
    },
    cancel() {
      name.destroy(); // the relay reads no name and exits
      child.kill('SIGKILL');
      child.unref();
      child.disconnect?.();
    },
  };
}

/** The spare started for this command, once: the caller uses it or cancels it. */
export function takeSpareDaemon(): SpareDaemon | undefined {
  const taken = spare;
  spare = undefined;
  return taken;
}

/**
 * In a spare: resolves on the parent's go; exits when the parent goes away without one. Elsewhere resolves at
 * once. Called before the daemon does anything.
 */
export function awaitGo(): Promise<void> {
  if (process.env[SPARE_ENV] === undefined) return Promise.resolve();
  delete process.env[SPARE_ENV]; // not for what the daemon starts
  return new Promise((resolve) => {
    // The output goes through the relay: one that is gone makes writes fail (EPIPE), which costs the log, not
    // the mount. (A user's own `mount -f | less` still ends with its pipe, as before.)
    for (const out of [process.stdout, process.stderr]) out.on('error', () => undefined);
    const onMessage = (m: unknown) => {
      if (!(m && typeof m === 'object' && (m as Go).jigdofsGo === true)) return;
      process.off('message', onMessage);
      process.off('disconnect', onGone);
      resolve();
    };
    const onGone = () => process.exit(0);
    process.on('message', onMessage);
    process.on('disconnect', onGone);
    if (!process.connected) onGone();
  });
}
