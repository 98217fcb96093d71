/**
 * Who runs a test's commands and reads its mounts: root (the test process itself) or a real unprivileged
 * user (test-user.ts). The same test cases run once per actor: every CLI run, program and file system call
 * on a mount goes through the actor, since a private FUSE mount answers only the user who mounted it (not
 * even root). For the user, file system calls go to a small agent process running as it (fs-agent.ts).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT, runCli, type CliOptions, type CliResult } from './cli.js';
import type { AgentRequest } from './fs-agent.js';
import { asUser, giveTo, openForOthers, testUser, type TestUser } from './test-user.js';

/** The calls on files the tests make, as fs/promises has them. */
export interface ActorFile {
  read(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}
export interface ActorFs {
  readdir(p: string): Promise<string[]>;
  stat(p: string): Promise<{ size: number; mode: number; uid: number; isFile(): boolean }>;
  open(p: string, flags?: string): Promise<ActorFile>;
}

export interface Actor {
  /** For test names: `root`, `a regular user`, `a regular user without XDG_RUNTIME_DIR`. */
  label: string;
  /** Undefined for root. */
  user?: TestUser;
  /** The environment of its CLI runs (undefined: runCli's default, a private XDG home). */
  env?: NodeJS.ProcessEnv;
  cli(args: string[], opts?: CliOptions): Promise<CliResult>;
  /** Runs a program as the actor; rejects on a non-zero exit. */
  run(cmd: string, args: string[]): Promise<string>;
  runBuffer(cmd: string, args: string[]): Promise<Buffer>;
  fs: ActorFs;
  /** A fresh folder the actor owns, removed when the test process exits (its mounts are off by then). */
  tempDir(prefix: string): string;
  /** Lets the actor read a path root made (fixtures): no-op for root. */
  share(p: string): void;
  /** Ends the file system agent, if any. */
  close(): void;
}

/** Folders tempDir made: removed at exit, after every test file's own cleanup (unmounts) has run. */
const madeDirs = new Set<string>();
function removeMadeDirs(): void {
  for (const d of madeDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      // Still a mount point (a failed test's leftover): left for the person reading that failure.
    }
  }
}
function freshDir(prefix: string): string {
  if (madeDirs.size === 0) process.once('exit', removeMadeDirs);
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  madeDirs.add(dir);
  return dir;
}

function exec(file: string, args: string[], encoding: 'utf8' | 'buffer'): Promise<string | Buffer> {
  return new Promise((resolve, reject) =>
    execFile(file, args, { encoding, maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${args.join(' ')}: ${err.message} ${String(stderr)}`));
      else resolve(stdout);
    }),
  );
}

export function rootActor(): Actor {
  return {
    label: 'root',
    cli: (args, opts) => runCli(args, opts),
    run: (cmd, args) => exec(cmd, args, 'utf8') as Promise<string>,
    runBuffer: (cmd, args) => exec(cmd, args, 'buffer') as Promise<Buffer>,
    fs: { readdir: (p) => readdir(p), stat: (p) => stat(p), open: (p, flags) => open(p, flags ?? 'r') },
    tempDir: freshDir,
    share: () => undefined,
    close: () => undefined,
  };
}

/** The client side of fs-agent.ts: one request per call, answers matched by id. */
function agentFs(user: TestUser, env: NodeJS.ProcessEnv): { fs: ActorFs; child: ChildProcess } {
  const [file, args] = asUser(user, process.execPath, ['--import', 'tsx', path.join(ROOT, 'test', 'helpers', 'fs-agent.ts')]);
  const child = spawn(file, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'inherit'] });
  child.unref();
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const a = JSON.parse(line) as { id: number; value?: unknown; error?: { code?: string; message: string } };
    const w = waiting.get(a.id);
    waiting.delete(a.id);
    if (!a.error) return w?.resolve(a.value);
    w?.reject(Object.assign(new Error(a.error.message), { code: a.error.code }));
  });
  const ask = (r: Omit<AgentRequest, 'id'>): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      child.stdin!.write(`${JSON.stringify({ ...r, id })}\n`);
    });
  const fs: ActorFs = {
    readdir: async (p) => (await ask({ op: 'readdir', path: p })) as string[],
    stat: async (p) => {
      const st = (await ask({ op: 'stat', path: p })) as { size: number; mode: number; uid: number; isFile: boolean };
      return { ...st, isFile: () => st.isFile };
    },
    open: async (p, flags) => {
      const fd = (await ask({ op: 'open', path: p, flags })) as number;
      return {
        read: async (buf, offset, length, position) => {
          const data = Buffer.from((await ask({ op: 'read', fd, length, position })) as string, 'base64');
          data.copy(buf, offset);
          return { bytesRead: data.length };
        },
        close: async () => void (await ask({ op: 'close', fd })),
      };
    },
  };
  return { fs, child };
}

/** The unprivileged user, with or without an XDG_RUNTIME_DIR (its own, 0700, as pam_systemd makes it). */
export function userActor(opts: { runtimeDir: boolean }): Actor {
  const user = testUser();
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    LANG: 'C.UTF-8',
    JIGDOFS_DEBUG: '',
  };
  if (opts.runtimeDir) {
    env.XDG_RUNTIME_DIR = mkdtempSync(path.join(user.home, 'run-'));
    giveTo(user, env.XDG_RUNTIME_DIR);
  }
  const { fs, child } = agentFs(user, env);
  const run = (cmd: string, args: string[], encoding: 'utf8' | 'buffer') => exec(...asUser(user, cmd, args), encoding);
  return {
    label: opts.runtimeDir ? 'a regular user' : 'a regular user without XDG_RUNTIME_DIR',
    user,
    env,
    cli: (args, o) => runCli(args, { env, ...o, user }),
    run: (cmd, args) => run(cmd, args, 'utf8') as Promise<string>,
    runBuffer: (cmd, args) => run(cmd, args, 'buffer') as Promise<Buffer>,
    fs,
    tempDir: (prefix) => {
      const dir = freshDir(prefix);
      giveTo(user, dir);
      return dir;
    },
    share: (p) => openForOthers(p),
    close: () => child.stdin!.end(),
  };
}
