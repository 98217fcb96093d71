/**
 * The spare daemon's two decisions (src/cli/spare-daemon.ts): which arguments are a background mount, and that a
 * spare waits for its parent's go, or exits when the parent goes away without one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isBackgroundMount } from '../../src/cli/spare-daemon.js';

test('a background mount is `mount` without -f, --foreground or help, up to a `--`', () => {
  const yes = [
    ['mount', 'a.jigdo', '/mnt'],
    ['mount', 'a.jigdo', '/mnt', '-q', '--direct-io', '--cache-dir', '/c'],
    ['mount', '--', '-f.jigdo', '/mnt'], // after `--`, -f is a file name
    ['mount', 'a.jigdo', '/mnt', '--local', 'Debian=/srv/f'],
    ['mount', 'a.jigdo', '/mnt', '--cache-dir'], // a usage error: the spare fails to parse as the parent does
  ];
  const no = [
    ['info', 'a.jigdo'],
    ['mount', 'a.jigdo', '/mnt', '-f'],
    ['mount', 'a.jigdo', '/mnt', '--foreground'],
    ['mount', 'a.jigdo', '/mnt', '-qf'],
    ['mount', '--help'],
    ['mount', '-h'],
    ['mount', '-V'],
    ['a.jigdo', '/mnt', '-o', 'ro'], // the fstab form: the CLI translates it, and spawns its daemon itself
    ['mount', 'caf\ufffd.jigdo', '/mnt'], // bytes Node could not decode: the CLI passes them exactly
  ];
  for (const args of yes) assert.equal(isBackgroundMount(args), true, args.join(' '));
  for (const args of no) assert.equal(isBackgroundMount(args), false, args.join(' '));
});

/** A spare (the env set) that prints "go" once awaitGo resolves; it first works for `delayMs`, as a spare loads the CLI. */
async function spare(dir: string, delayMs = 0): Promise<ReturnType<typeof fork>> {
  const module = pathToModule('../../src/cli/spare-daemon.ts');
  const script = path.join(dir, 'spare.mjs');
  const work = `const until = Date.now() + ${delayMs}; while (Date.now() < until);`; // busy: no event handled meanwhile
  await writeFile(script, `import { awaitGo } from ${JSON.stringify(module)};\n${work}\nawait awaitGo();\nconsole.log('go', process.env.JIGDOFS_SPARE_DAEMON ?? 'unset');\nprocess.exit(3);\n`);
  return fork(script, [], { env: { ...process.env, JIGDOFS_SPARE_DAEMON: '1' }, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
}

const pathToModule = (rel: string) => path.resolve(path.dirname(fileURLToPath(import.meta.url)), rel);

function outcome(child: ReturnType<typeof fork>): Promise<{ code: number | null; out: string }> {
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out })));
}

// A broken awaitGo must fail these tests, not hang the run.
const LIMIT = { timeout: 30_000 };

/** Runs a spare (see `spare`) in a temporary folder: `drive` talks to it and returns how it ended. */
async function withSpare(delayMs: number, drive: (child: ReturnType<typeof fork>, done: ReturnType<typeof outcome>) => Promise<unknown>): Promise<unknown> {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-spare-unit-'));
  try {
    const child = await spare(dir, delayMs);
    return await drive(child, outcome(child));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("a spare goes on at its parent's go, and its children do not inherit the spare's mark", LIMIT, async () => {
  const ended = await withSpare(0, async (child, done) => {
    child.send({ other: 1 }); // not a go
    await sleep(500);
    assert.equal(child.exitCode, null, 'still waiting');
    child.send({ jigdofsGo: true });
    return done;
  });
  assert.deepEqual(ended, { code: 3, out: 'go unset\n' });
});

test('a go sent before the spare is ready for it (the usual order) is not lost', LIMIT, async () => {
  const ended = await withSpare(1500, async (child, done) => {
    child.send({ jigdofsGo: true });
    return done;
  });
  assert.deepEqual(ended, { code: 3, out: 'go unset\n' });
});

test('a spare whose parent goes away without a go exits, having done nothing', LIMIT, async () => {
  const ended = await withSpare(0, async (child, done) => {
    await sleep(500);
    child.disconnect();
    return done;
  });
  assert.deepEqual(ended, { code: 0, out: '' });
});
