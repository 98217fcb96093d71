import { execFile } from 'node:child_process';
import { lchown, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { runCli, type CliResult } from './cli.js';
import { giveTo, type TestUser } from './test-user.js';
import { hangReport, mountDaemonPid } from './hang-report.js';
import { unescapeMountField } from '../../src/util/mount-field.js';
import { DAEMON_END_MS, MOUNT_GONE_MS, UNMOUNT_ANSWER_MS } from '../../src/cli/commands/umount.js';

const run = promisify(execFile);
/** A umount slower than this is reported (with the daemon's log) even when it succeeds. */
const SLOW_UMOUNT_MS = 10_000;

/** A real jigdofs mount made through the CLI: the daemon is a separate process, never this one. */
export interface TestMount {
  mnt: string;
  cacheDir: string;
  mountResult: CliResult;
  file(name: string): string;
  status(): Promise<Record<string, unknown>>;
  pid(): Promise<number>;
  log(): Promise<string>;
  umount(): Promise<CliResult>;
  /** Unmounts if still mounted and removes the temp folders; safe to call twice. */
  cleanup(): Promise<void>;
}

/** /proc/mounts writes blanks and backslashes in paths as octal escapes (\040). */
export async function isMounted(mnt: string): Promise<boolean> {
  const text = await readFile('/proc/mounts', 'utf8');
  return text.split('\n').some((l) => unescapeMountField(l.split(' ')[1] ?? '') === mnt);
}

/** listenSilently's listener: how many requests it took, and its close (which drops them). */
export interface SilentListener {
  taken: () => number;
  close: () => void;
}

/**
 * Listens on a mount's control socket name `sock` (its daemon's socket removed first) and takes every request without
 * ever answering: a daemon that is alive and stuck, as `umount` sees it. `owner`: who the socket belongs to (umount
 * talks only to a socket of its own user's).
 */
export async function listenSilently(sock: string, owner?: TestUser): Promise<SilentListener> {
  await rm(sock);
  const held: Socket[] = [];
  const server = createServer((c) => void held.push(c));
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  if (owner) await lchown(sock, owner.uid, owner.gid);
  return {
    taken: () => held.length,
    close: () => {
      held.forEach((c) => c.destroy());
      server.close();
    },
  };
}

export async function forceUnmount(mnt: string): Promise<void> {
  if (await isMounted(mnt)) await run('fusermount', ['-uz', mnt]).catch(() => undefined);
}

/**
 * Mounts `jigdo` with extra CLI args on a fresh mountpoint; throws with the CLI's stderr if it fails.
 * `env`: the whole environment of mount, status and umount (default: runCli's). `user`: mount, status and
 * umount run as this unprivileged user (give its `env`), who owns the mountpoint, cache and log folder.
 */
export async function mountJigdo(
  jigdo: string,
  args: string[] = [],
  opts: { cacheDir?: string; mnt?: string; env?: NodeJS.ProcessEnv; user?: TestUser } = {},
): Promise<TestMount> {
  const base = await mkdtemp(path.join(tmpdir(), 'jigdofs-mnt-'));
  const mnt = opts.mnt ?? path.join(base, 'mnt');
  const cacheDir = opts.cacheDir ?? path.join(base, 'cache');
  if (!opts.mnt) await run('mkdir', ['-p', mnt]); // a given mountpoint may be stale: stat would fail
  if (opts.user) giveTo(opts.user, base);
  const logFile = path.join(base, 'daemon.log');
  const as = { env: opts.env, user: opts.user };
  const mountResult = await runCli(['mount', jigdo, mnt, '--cache-dir', cacheDir, '--log-file', logFile, ...args], { timeoutMs: 60_000, ...as });
  const m: TestMount = {
    mnt,
    cacheDir,
    mountResult,
    file: (name) => path.join(mnt, name),
    status: async () => {
      const r = await runCli(['status', mnt, '--json'], { timeoutMs: 15_000, ...as });
      if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    },
    pid: async () => (await m.status()).pid as number,
    // A background daemon writes its log through a relay (src/cli/spare-daemon.ts), a moment behind: read
    // until it stops growing.
    log: async () => {
      const read = () => readFile(logFile, 'utf8').catch(() => '');
      let last = await read();
      for (let i = 0; i < 20; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        const now = await read();
        if (now === last) break;
        last = now;
      }
      return last;
    },
    // Longer than all the CLI's own waits (the daemon's answer, after which it unmounts from outside; the mount's going;
    // the daemon's end, after which it says so): a test sees what the CLI does then, not its own timeout. A slow or
    // hung umount shows the daemon's log: a hang in CI was told by nothing but the timeout.
    // While it is slow, what the processes are doing (hang-report.ts) goes with the report.
    umount: async () => {
      const daemon = await mountDaemonPid(mnt);
      let report: Promise<string> | undefined;
      const slow = setTimeout(() => void (report = hangReport(daemon)), SLOW_UMOUNT_MS);
      const r = await runCli(['umount', mnt], { timeoutMs: UNMOUNT_ANSWER_MS + MOUNT_GONE_MS + DAEMON_END_MS + 10_000, ...as });
      clearTimeout(slow);
      if (r.timedOut || r.ms > SLOW_UMOUNT_MS) {
        const log = (await m.log()).slice(-1500);
        const seen = `what ran ${SLOW_UMOUNT_MS / 1000} s into it:\n${await report}`;
        if (r.timedOut) r.stderr += `\n--- the daemon's log, its end\n${log}\n--- ${seen}`;
        else process.stderr.write(`jigdofs umount ${mnt} took ${r.ms} ms; its stderr:\n${r.stderr}the daemon's log, its end:\n${log}\n${seen}\n`);
      }
      return r;
    },
    cleanup: async () => {
      // A daemon that died under a test leaves a stale mount: show its log, or CI shows only ENOTCONN.
      // (root gets EACCES on a user's private mount: not a death.)
      const died = await stat(mnt).then(() => false, (err: NodeJS.ErrnoException) => err.code === 'ENOTCONN');
      if (died) process.stderr.write(`jigdofs daemon for ${mnt} died; its log:\n${await m.log()}\n`);
      // `jigdofs umount` returns once the daemon has ended: it cannot write into the folders removed next.
      else if (await isMounted(mnt)) await m.umount();
      await forceUnmount(mnt);
      await rm(base, { recursive: true, force: true });
    },
  };
  if (mountResult.code !== 0) {
    await m.cleanup();
    throw new Error(`mount failed (${mountResult.code}): ${mountResult.stderr}`);
  }
  return m;
}
