import { spawn, type ChildProcess } from 'node:child_process';
import { argvEnv } from '../exact-argv.js';
import { constants, openSync, closeSync, fstatSync } from 'node:fs';
import { NotRegularFile, openRegularSync } from '../../util/open-regular.js';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { errorMessage } from '../../format/errors.js';
import { fsPath, quoted } from '../../format/byte-string.js';
import { checkCacheDir } from '../../engine/cache-dir.js';
import { endCommand, loadCommandJigdo } from '../session.js';
import { unusedLabels } from '../unused-labels.js';
import { selectImage } from '../../engine/session.js';
import { makeDirs } from '../../util/make-dirs.js';
import { prepareMountpoint } from '../../fuse/mountpoint.js';
import { daemonMount } from '../../fuse/mount-source.js';
import { fusermountUnmount, resolveMountpoint, sleep, topMountIs } from '../../fuse/mounts.js';
import { addSourceOptions, logger, sourcePathProblems, resolveSettings, sourceOptions, type SourceFlags } from '../options.js';
import { awaitGo, takeSpareDaemon, type SpareDaemon } from '../spare-daemon.js';

interface MountFlags extends SourceFlags {
  foreground?: boolean;
  allowOther?: boolean;
  directIo?: boolean;
  logFile?: string;
}

/**
 * Message the background daemon sends its parent over IPC: its mount is ready, or why not; while it starts, every
 * STARTING_BEAT_MS, the body bytes it has received so far (a template downloading).
 */
type DaemonMessage = { ready: true; names: string[] } | { error: string } | { starting: number };

/**
 * How long the parent waits for the daemon's word with nothing downloaded meanwhile (JIGDOFS_MOUNT_WAIT, in seconds,
 * sets it). A download under way keeps it waiting: a 30 MB template over a slow link took longer than this, the mount
 * failed, and each retry started the download again.
 */
const READY_TIMEOUT_MS = Math.max(1, Number(process.env.JIGDOFS_MOUNT_WAIT) || 60) * 1000;
const STARTING_BEAT_MS = Math.min(2000, READY_TIMEOUT_MS / 4);

/**
 * To the `jigdofs mount` that started this daemon, if it still waits: one that is gone (Ctrl-C, a closed terminal)
 * made the send fail with an 'error' event on the process, which the daemon took for a fatal error of its own.
 */
function tellParent(message: DaemonMessage): void {
  if (process.connected) process.send?.(message, undefined, undefined, () => undefined);
}

/** Foreground: mount here and stay until unmounted; logs go to stderr (or --log-file in the daemon). */
async function mountForeground(jigdoArg: string, mnt: string, flags: MountFlags): Promise<void> {
  const opts = sourceOptions(flags, { timestamps: true });
  const { log } = opts;
  for (const line of await sourcePathProblems(flags, false)) log(line); // (in the log; a background mount's parent said it too)
  const started = process.connected; // a daemon: its parent waits for the mount (mountBackground)
  const beat = started ? setInterval(() => tellParent({ starting: opts.network?.board.parts.bytesDownloaded ?? 0 }), STARTING_BEAT_MS) : undefined;
  beat?.unref();
  try {
    const loaded = await loadCommandJigdo(jigdoArg, opts);
    for (const line of unusedLabels(loaded, flags)) log(line);
    // Every [Image] of the .jigdo, or the one --image names (the option was taken and ignored before).
    const jigdo = flags.image ? { ...loaded, images: [selectImage(loaded, flags.image)] } : loaded;
    const { runMount } = await import('../../fuse/daemon.js'); // fuse-native and the engine: the daemon's, not the parent's
    const mountOpts = { allowOther: flags.allowOther ?? false, directIo: flags.directIo ?? false, log, extraStatus: () => opts.network?.fullStats() }; // the cache counted once, not "0 files"
    await runMount(jigdo, mnt, opts, mountOpts, (names) => {
      clearInterval(beat);
      if (!started || process.connected) return tellParent({ ready: true, names });
      // Its parent ended before the mount was ready (Ctrl-C on `jigdofs mount`): the user saw no mount; none stays.
      log('the jigdofs mount command that started this daemon ended before the mount was ready: unmounting');
      process.kill(process.pid, 'SIGTERM'); // taken by the mount's own handler, asked for right after this call (untilStopped)
    });
    await endCommand(opts); // once the mount is gone
  } catch (err) {
    clearInterval(beat);
    tellParent({ error: errorMessage(err) });
    throw err;
  }
}

/** The daemon's log file: under the cache dir, named after the mountpoint. */
async function daemonLogFile(flags: MountFlags, mnt: string): Promise<string> {
  // `mnt` is resolved already (resolveMountpoint): a mount made through a symlink logs under its real path.
  // Settings only: the daemon builds the network; here the flags and configuration are checked (and
  // their warnings shown) before anything is spawned, whatever the log file.
  const cacheDir = resolveSettings(flags).cacheDir;
  if (flags.logFile) return path.resolve(flags.logFile);
  await checkCacheDir(cacheDir);
  const dir = path.join(cacheDir, 'logs');
  await makeDirs(dir);
  return path.join(dir, `mount-${mnt.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_/, '')}.log`);
}

/** The daemon, started here: this command again in the foreground mode, its output to the log file (`logFd`). */
function spawnDaemon(argv: string[], logFile: string, logFd: number): ChildProcess {
  // Right after `mount`: never taken as the value of an option (`--log-file -f`), nor as a file after `--`.
  const args = [argv[0]!, '--foreground', '--log-file', logFile, ...argv.slice(1)];
  return spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
    env: { ...process.env, ...argvEnv(args) }, // exact bytes of each argument (exact-argv.ts)
    detached: true,
    stdio: ['ignore', logFd, logFd, 'ipc'],
  });
}

/**
 * Background (default): re-runs this command as a detached daemon in the foreground mode (the spare that
 * bin/jigdofs started, else one spawned here), and returns only once the image file is visible through the
 * kernel with its full size, or with the daemon's reason.
 */
async function mountBackground(mntArg: string, flags: MountFlags, argv: string[], spare?: SpareDaemon): Promise<void> {
  let logFile: string;
  let mnt: string;
  let logFd: number;
  try {
    mnt = await resolveMountpoint(mntArg);
    // Refuse a live mount (and clear a stale one) here, so that a failure can never touch another mount.
    await prepareMountpoint(mnt, logger(flags.quiet), { allowOther: flags.allowOther });
    // Said here, on the terminal: the daemon's own lines about them go only to its log.
    for (const line of await sourcePathProblems(flags, true)) logger(flags.quiet)(line);
    logFile = await daemonLogFile(flags, mnt);
    try {
      // Private: it names files, mirrors and paths of the user. The one under the cache only as a regular file (a FIFO
      // put there hung the mount for good); `--log-file` is the user's to point at a pipe or a device.
      logFd = flags.logFile ? openSync(fsPath(logFile), 'a', 0o600) : openRegularSync(fsPath(logFile), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT);
    } catch (err) {
      const why = err instanceof NotRegularFile ? `it is ${err.kind}` : ((err as NodeJS.ErrnoException).code ?? errorMessage(err));
      throw new Error(`${logFile}: cannot open the daemon's log file (${why})`);
    }
  } catch (err) {
    spare?.cancel();
    throw err;
  }
  let child: ChildProcess | undefined;
  try {
    // The relay opens the log by its name: /dev/stderr or /dev/fd/N would be the relay's, not ours.
    if (fstatSync(logFd).isFile()) child = spare?.start(fsPath(logFile)); // undefined: no spare, or it is gone
    else spare?.cancel();
    child ??= spawnDaemon(argv, logFile, logFd);
  } finally {
    closeSync(logFd);
  }
  const outcome = await new Promise<Exclude<DaemonMessage, { starting: number }>>((resolve) => {
    let received = -1;
    const wait = () => setTimeout(() => resolve({ error: `the daemon did not report a mount, nor download anything, for ${READY_TIMEOUT_MS / 1000} s (see ${logFile})` }), READY_TIMEOUT_MS);
    let timer = wait();
    child.on('message', (m: DaemonMessage) => {
      if ('starting' in m) {
        // Bytes came in since the last word (a template downloading): the wait starts again.
        if (m.starting > received) {
          received = m.starting;
          clearTimeout(timer);
          timer = wait();
        }
        return;
      }
      clearTimeout(timer);
      resolve(m);
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ error: `cannot start the daemon (${err.message})` });
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ error: `the daemon exited (${signal ?? `code ${code}`}) before mounting; see ${logFile}` });
    });
  });
  // Only after our daemon said it mounted can a mount at `mnt` be ours to remove.
  const fail = async (why: string, mounted: boolean): Promise<never> => {
    child.kill('SIGTERM');
    await sleep(300);
    if (child.exitCode === null) child.kill('SIGKILL');
    // The daemon's own mount only (its source names it): never one made there since by someone else.
    if (mounted && child.pid !== undefined && topMountIs(mnt, daemonMount(child.pid))) await fusermountUnmount(mnt, true).catch(() => undefined);
    throw new Error(why);
  };
  if ('error' in outcome) return fail(outcome.error, false);
  // The mount callback fires before the kernel serves the mount: wait until the files are really there.
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (const name of outcome.names) {
    for (;;) {
      const st = await stat(path.join(mnt, name)).catch(() => undefined);
      if (st && st.isFile()) break;
      if (Date.now() > deadline) return fail(`${mnt}/${name} did not appear (see ${logFile})`, true);
      await sleep(50);
    }
  }
  child.disconnect();
  child.unref();
  if (!flags.quiet) {
    process.stderr.write(`jigdofs: mounted ${outcome.names.map((n) => quoted(path.join(mnt, n))).join(', ')} (daemon pid ${child.pid}, log ${logFile})\n`);
  }
}

export function registerMount(program: Command): void {
  addSourceOptions(
    program
      .command('mount')
      .description('mount the image(s) of a .jigdo as read-only files, fetched lazily as they are read')
      .argument('<jigdo>', '.jigdo file or http(s) URL')
      .argument('<mountpoint>', 'an existing empty directory')
      .option('-f, --foreground', 'stay attached and log to stderr')
      .option('--allow-other', 'let other users read the mount (off: the mount is private)')
      .option('--direct-io', "reads bypass the kernel's page cache: faster whole-image copies (cp, dd bs=1M); slower small reads, no shared mmap")
      .option('--log-file <FILE>', 'where the background daemon logs (default: under the cache dir)'),
  ).action(async (jigdoArg: string, mnt: string, flags: MountFlags) => {
    await awaitGo(); // a spare (spare-daemon.ts) does nothing before its parent's checks, whichever way it parsed
    const spare = takeSpareDaemon();
    if (flags.foreground) {
      spare?.cancel(); // started on a guess (spare-daemon.ts): not this time
      return mountForeground(jigdoArg, mnt, flags);
    }
    await mountBackground(mnt, flags, process.argv.slice(2), spare); // no -f in them: not in the foreground
  });
}
