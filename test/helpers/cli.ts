/**
 * Runs the built CLI (`bin/jigdofs`, which loads the bundle in dist/app/) as a child process, the way users run it.
 * Tests assume `npm run build` ran first (the npm `test` script does it); a missing dist/ fails
 * loudly instead of every test failing obscurely.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { asUser, type TestUser } from './test-user.js';

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const REPO = ROOT;
export const BIN = path.join(ROOT, 'bin', 'jigdofs');
export const SAMPLES = path.join(ROOT, 'test', 'fixtures', 'samples');
export const SAMPLE_PARTS = path.join(SAMPLES, 'parts');

export interface CliResult {
  /** Exit code, or null when the process was killed (timeout, signal). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

export interface CliOptions {
  cwd?: string;
  /** Kill the child (SIGKILL) after this many ms; the result then has timedOut = true. Default 60 s. */
  timeoutMs?: number;
  /** The child's whole environment (default: ours, with a private, empty XDG_CACHE_HOME and XDG_CONFIG_HOME and no JIGDOFS_DEBUG). */
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin (otherwise stdin is /dev/null). */
  input?: string | Buffer;
  /** Run as this unprivileged user (give `env` too: the default one is root's). */
  user?: TestUser;
  /** Run bin/jigdofs as a program, so that its shell line runs as it does for users (default: `node bin/jigdofs`). */
  program?: boolean;
  /** A file descriptor for the child's standard output (e.g. /dev/full opened), instead of a pipe read into `stdout`. */
  stdoutFd?: number;
}

/** One private XDG home per test process: a test that forgets --cache-dir never touches ~/.cache, and no user config applies. */
let privateCache: string | undefined;

export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  if (!existsSync(path.join(ROOT, 'dist', 'app', 'main.js'))) {
    throw new Error('dist/app/main.js is missing: run `npm run build` before the integration tests');
  }
  if (!privateCache) {
    const dir = mkdtempSync(path.join(tmpdir(), 'jigdofs-cli-home-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    privateCache = dir;
  }
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const [cmd, cmdArgs] = opts.program ? [BIN, args] : [process.execPath, [BIN, ...args]];
    const [file, argv] = opts.user ? asUser(opts.user, cmd, cmdArgs) : [cmd, cmdArgs];
    const child = spawn(file, argv, {
      cwd: opts.cwd ?? ROOT,
      env: opts.env ?? { ...process.env, XDG_CACHE_HOME: privateCache, XDG_CONFIG_HOME: privateCache, JIGDOFS_DEBUG: '' },
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', opts.stdoutFd ?? 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
        ms: Date.now() - started,
      });
    });
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // the child may exit before reading its input
      child.stdin.end(opts.input);
    }
  });
}

/** A readable summary of a run, for assertion messages. */
export function describeRun(r: CliResult): string {
  return `exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''}${r.timedOut ? ' TIMED OUT' : ''}\n--- stdout\n${r.stdout.slice(0, 2000)}\n--- stderr\n${r.stderr.slice(0, 2000)}`;
}

/** Signs of a crash rather than a handled error: stack frames, JS exception names, Node internals. */
const CRASH = /^\s+at |\b(TypeError|RangeError|ReferenceError|SyntaxError|AssertionError|Uncaught|UnhandledPromiseRejection)\b|node:internal|ERR_[A-Z_]+/m;

/**
 * The run failed cleanly: exit code 1, nothing that looks like a crash, and stderr is exactly one line
 * `jigdofs: <something naming fileHint>: <problem>` (fileHint: a path or a part of it).
 */
export function assertCleanFailure(r: CliResult, fileHint: string | RegExp, problem?: RegExp): void {
  const why = describeRun(r);
  assert.equal(r.timedOut, false, `command hung:\n${why}`);
  assert.equal(r.code, 1, `expected exit code 1:\n${why}`);
  assert.doesNotMatch(r.stderr + r.stdout, CRASH, `looks like a crash:\n${why}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `expected exactly one line on stderr:\n${why}`);
  const line = lines[0]!;
  assert.match(line, /^jigdofs: \S.*: \S/, `expected "jigdofs: <file>: <problem>":\n${why}`);
  if (typeof fileHint === 'string') assert.ok(line.includes(fileHint), `error does not name ${fileHint}:\n${why}`);
  else assert.match(line, fileHint, `error does not name the file:\n${why}`);
  if (problem) assert.match(line, problem, `error does not say what is wrong:\n${why}`);
}

/** The run succeeded (exit 0) without hanging. */
export function assertOk(r: CliResult): void {
  assert.equal(r.timedOut, false, `command hung:\n${describeRun(r)}`);
  assert.equal(r.code, 0, `expected exit code 0:\n${describeRun(r)}`);
}

/** A seeded PRNG (mulberry32) for reproducible random tests. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Integer in [0, n). */
export function randInt(rand: () => number, n: number): number {
  return Math.floor(rand() * n);
}
