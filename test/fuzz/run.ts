/**
 * The fuzz harness: `npm run fuzz -- [--cases N] [--seconds S] [--target NAME] [--seed X]`.
 * Every target (test/fuzz/targets/*.ts) gets its seeds (test/fuzz/corpus/<name>/), unmutated first, then
 * mutated (mutate.ts), run one at a time in a child process (child.ts) under a watchdog: a case that takes
 * longer than the time limit (a hang), makes the child's RSS grow past the memory cap, kills the child (a
 * crash, heap exhaustion) or throws an error its target does not call clean is a failure. Its input is saved
 * to the crash folder with a note of what happened, and a fresh child takes the cases that follow.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CORPUS_DIR, TARGETS_DIR, loadTargets } from './target.js';
import { Rng, mutate } from './mutate.js';

export interface FuzzOptions {
  /** Cases in all, shared among the targets run. */
  cases: number;
  /** Time budget in all (seconds), shared among the targets run; 0: no limit. */
  seconds: number;
  /** Run only this target. */
  target?: string;
  seed: number;
  targetsDir: string;
  corpusDir: string;
  crashDir: string;
  /** A case may take this long. */
  timeoutMs: number;
  /** The child's RSS may grow this far above what it was when it became ready. */
  memoryMb: number;
  /** V8 heap limit of the child. */
  heapMb: number;
  log: (line: string) => void;
}

export interface FuzzFailure {
  target: string;
  kind: 'crash' | 'hang' | 'memory' | 'unclean';
  problem: string;
  file: string;
}

export interface FuzzResult {
  cases: Map<string, number>;
  failures: FuzzFailure[];
  /** Highest RSS growth over the ready child seen for each target (MiB). */
  peakMb: Map<string, number>;
}

const CHILD = path.join(import.meta.dirname, 'child.ts');

export const defaults = (): FuzzOptions => ({
  cases: 2000,
  seconds: 0,
  seed: 1,
  targetsDir: TARGETS_DIR,
  corpusDir: CORPUS_DIR,
  crashDir: path.resolve('fuzz-crashes'),
  timeoutMs: 10_000,
  memoryMb: 512,
  heapMb: 256,
  log: (line) => process.stderr.write(`${line}\n`),
});

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

interface Reply {
  id?: number;
  problem?: string;
  ready?: boolean;
}

/** One child process and the case it runs; `run` resolves with the case's verdict. */
class Child {
  readonly proc: ChildProcess;
  readonly ready: Promise<void>;
  baseRss = 0;
  private stderr = '';
  private pending: ((r: { kind?: FuzzFailure['kind']; problem?: string }) => void) | undefined;

  constructor(private readonly opts: FuzzOptions) {
    this.proc = fork(CHILD, [opts.targetsDir], {
      execArgv: ['--import', 'tsx', `--max-old-space-size=${opts.heapMb}`],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.proc.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    this.ready = new Promise((resolve, reject) => {
      this.proc.on('message', (m: Reply) => {
        if (m.ready) {
          this.baseRss = rssOf(this.proc.pid!);
          resolve();
        } else this.settle({ kind: m.problem ? 'unclean' : undefined, problem: m.problem });
      });
      this.proc.on('exit', (code, signal) => {
        reject(new Error(`fuzz child exited before it was ready (${code ?? signal}): ${this.stderr}`));
        this.settle({ kind: 'crash', problem: `the child died (exit ${code ?? signal}): ${this.stderr.trim()}` });
      });
    });
  }

  private settle(r: { kind?: FuzzFailure['kind']; problem?: string }): void {
    const p = this.pending;
    this.pending = undefined;
    p?.(r);
  }

  /** Runs one case under the watchdog; a hang or memory over the cap kills the child. */
  run(id: number, target: string, input: Buffer, onRss: (mb: number) => void): Promise<{ kind?: FuzzFailure['kind']; problem?: string }> {
    return new Promise((resolve) => {
      const cap = this.baseRss + this.opts.memoryMb * 1024 * 1024;
      const stop = (kind: FuzzFailure['kind'], problem: string): void => {
        this.proc.kill('SIGKILL');
        this.settle({ kind, problem });
      };
      const timer = setTimeout(() => stop('hang', `no answer within ${this.opts.timeoutMs} ms`), this.opts.timeoutMs);
      const watch = setInterval(() => {
        const rss = rssOf(this.proc.pid!);
        onRss((rss - this.baseRss) / 1048576);
        if (rss > cap) stop('memory', `RSS ${Math.round(rss / 1048576)} MiB, over the cap of ${Math.round(cap / 1048576)} MiB`);
      }, 20);
      this.pending = (r) => {
        clearTimeout(timer);
        clearInterval(watch);
        resolve(r);
      };
      this.proc.send({ id, target, input });
    });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const gone = new Promise((r) => this.proc.once('exit', r));
    this.proc.send('exit');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(t);
  }
}

async function seedsOf(dir: string): Promise<Buffer[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const seeds = await Promise.all(names.sort().map((n) => readFile(path.join(dir, n)).catch(() => undefined)));
  const found: Buffer[] = seeds.flatMap((s) => (s ? [s] : []));
  return found.length > 0 ? found : [Buffer.alloc(0)];
}

async function saveFailure(opts: FuzzOptions, target: string, kind: FuzzFailure['kind'], problem: string, input: Buffer): Promise<string> {
  const dir = path.join(opts.crashDir, target);
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${kind}-${createHash('sha1').update(input).digest('hex').slice(0, 16)}.bin`);
  await writeFile(file, input);
  await writeFile(`${file}.txt`, `${problem}\n`);
  return file;
}

/** Runs `count` cases of one target within `deadline` (ms since epoch, 0: none). */
async function fuzzTarget(opts: FuzzOptions, name: string, count: number, deadline: number, result: FuzzResult): Promise<void> {
  const seeds = await seedsOf(path.join(opts.corpusDir, name));
  const rng = new Rng(opts.seed ^ createHash('sha1').update(name).digest().readUInt32LE(0));
  let child: Child | undefined;
  let done = 0;
  const peak = (mb: number): void => {
    result.peakMb.set(name, Math.max(result.peakMb.get(name) ?? 0, Math.round(mb)));
  };
  try {
    for (let i = 0; i < count && (deadline === 0 || Date.now() < deadline); i++) {
      const input = i < seeds.length ? seeds[i]! : mutate(rng, seeds);
      if (!child) {
        child = new Child(opts);
        await child.ready;
      }
      const verdict = await child.run(i, name, input, peak);
      done++;
      if (verdict.kind) {
        const file = await saveFailure(opts, name, verdict.kind, verdict.problem ?? '', input);
        result.failures.push({ target: name, kind: verdict.kind, problem: verdict.problem ?? '', file });
        opts.log(`fuzz ${name}: case ${i}: ${verdict.kind}: ${(verdict.problem ?? '').split('\n')[0]} (input saved to ${file})`);
        if (verdict.kind !== 'unclean') child = undefined; // killed or dead: a fresh one for the next case
      }
    }
  } finally {
    await child?.stop();
  }
  result.cases.set(name, done);
}

export async function runFuzz(given: Partial<FuzzOptions>): Promise<FuzzResult> {
  const opts = { ...defaults(), ...given };
  const all = [...(await loadTargets(opts.targetsDir)).keys()];
  const names = opts.target ? all.filter((n) => n === opts.target) : all;
  if (names.length === 0) throw new Error(`no fuzz target named ${opts.target} (there are: ${all.join(', ')})`);
  const result: FuzzResult = { cases: new Map(), failures: [], peakMb: new Map() };
  const start = Date.now();
  for (const [k, name] of names.entries()) {
    const share = opts.seconds > 0 ? ((opts.seconds * 1000 - (Date.now() - start)) / (names.length - k)) : 0;
    const deadline = opts.seconds > 0 ? Date.now() + Math.max(0, share) : 0;
    const count = Math.ceil((opts.cases - [...result.cases.values()].reduce((a, b) => a + b, 0)) / (names.length - k));
    await fuzzTarget(opts, name, count, deadline, result);
    opts.log(`fuzz ${name}: ${result.cases.get(name)} cases, peak RSS growth ${result.peakMb.get(name) ?? 0} MiB`);
  }
  return result;
}

function parseArgs(argv: string[]): Partial<FuzzOptions> {
  const out: Partial<FuzzOptions> = {};
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    const num = (): number => {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${flag}: "${value}" is not a number`);
      i++;
      return n;
    };
    if (flag === '--cases') out.cases = num();
    else if (flag === '--seconds') out.seconds = num();
    else if (flag === '--seed') out.seed = num();
    else if (flag === '--timeout-ms') out.timeoutMs = num();
    else if (flag === '--memory-mb') out.memoryMb = num();
    else if (flag === '--target' && value) {
      out.target = value;
      i++;
    } else if (flag === '--crash-dir' && value) {
      out.crashDir = path.resolve(value);
      i++;
    } else throw new Error(`unknown option ${flag} (use --cases N --seconds S --target NAME --seed X --crash-dir DIR --timeout-ms T --memory-mb M)`);
  }
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) {
  try {
    const given = parseArgs(process.argv.slice(2));
    if (given.seconds && given.cases === undefined) given.cases = Number.MAX_SAFE_INTEGER;
    const result = await runFuzz(given);
    const total = [...result.cases.values()].reduce((a, b) => a + b, 0);
    process.stderr.write(`fuzz: ${total} cases, ${result.failures.length} failures\n`);
    process.exitCode = result.failures.length > 0 ? 1 : 0;
  } catch (err) {
    process.stderr.write(`fuzz: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  }
}
