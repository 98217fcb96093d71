/**
 * Start-up (issue 11 item 5): a run that fetches nothing loads no HTTP client (undici, imported at the first
 * request), and only the mount daemon loads fuse-native. Counted with a module load hook in NODE_OPTIONS,
 * which every process of the command (the CLI, the daemon it spawns) inherits.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BIN, ROOT, SAMPLES, SAMPLE_PARTS, runCli } from '../helpers/cli.js';

let work: string;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-startup-'));
});
after(() => rm(work, { recursive: true, force: true }));

/**
 * A module.register hook appending "ROLE URL" for every ES module loaded, and "ROLE require:NAME" for every
 * package require()d (fuse-native is: src/fuse/fuse-class.ts). ROLE: daemon when --foreground, else cli.
 */
const HOOK = `data:text/javascript,${encodeURIComponent(`
import Module, { register } from 'node:module';
import { appendFileSync } from 'node:fs';
// The role is known here, on the main thread (the hooks run on a thread of their own, without our argv).
const role = process.argv.includes('--foreground') ? 'daemon' : 'cli';
const load = Module._load;
Module._load = function (request, ...rest) {
  if (!request.startsWith('node:') && !request.startsWith('.') && !request.startsWith('/')) appendFileSync(process.env.JIGDOFS_TEST_LOADED, role + ' require:' + request + '\\n');
  return load.call(this, request, ...rest);
};
register('data:text/javascript,' + encodeURIComponent(\`
import { appendFileSync } from 'node:fs';
let role = '?';
export function initialize(data) { role = data.role; }
export async function load(url, context, next) {
  appendFileSync(process.env.JIGDOFS_TEST_LOADED, role + ' ' + url + '\\\\n');
  return next(url, context);
}\`), { data: { role } });
`)}`;

/** Runs the CLI with the hook; returns the modules each role loaded. */
async function loadedBy(args: string[], log: string): Promise<{ cli: string[]; daemon: string[] }> {
  const cache = path.join(work, 'home');
  const env = { ...process.env, NODE_OPTIONS: `--import=${HOOK}`, JIGDOFS_TEST_LOADED: log, XDG_CACHE_HOME: cache, XDG_CONFIG_HOME: cache, JIGDOFS_DEBUG: '' };
  const r = await runCli(args, { env });
  assert.equal(r.code, 0, r.stderr);
  const lines = (await readFile(log, 'utf8')).trim().split('\n');
  const of = (role: string) => lines.filter((l) => l.startsWith(`${role} `)).map((l) => l.slice(role.length + 1));
  return { cli: of('cli'), daemon: of('daemon') };
}

const undici = (urls: string[]) => urls.filter((u) => u.includes('/node_modules/undici/'));
const fuseNative = (urls: string[]) => urls.filter((u) => u.includes('/node_modules/fuse-native/') || u === 'require:fuse-native');

test('info with local parts loads neither undici nor fuse-native', async () => {
  const { cli } = await loadedBy(['info', path.join(SAMPLES, 'jf-md5-gzip.jigdo'), '--local', `Parts=${SAMPLE_PARTS}`], path.join(work, 'info.log'));
  assert.ok(cli.some((u) => u.endsWith('/dist/app/main.js')), 'the hook saw the CLI load');
  // The bundle (scripts/bundle.mjs): a handful of files (its chunks, on the main thread and the pool's), where
  // module by module it was ~130 of ours per process.
  const ours = cli.filter((u) => u.startsWith(pathToFileURL(path.join(ROOT, 'dist')).href + '/'));
  assert.ok(ours.length <= 20, `the CLI loaded ${ours.length} files of dist/: ${ours.join(' ')}`);
  assert.deepEqual(undici(cli), []);
  assert.deepEqual(fuseNative(cli), []);
});

test('mount from local parts, a mirror configured but not needed: no undici anywhere, fuse-native only in the daemon', async () => {
  const mnt = path.join(work, 'mnt');
  await mkdir(mnt);
  const log = path.join(work, 'mount.log');
  const args = ['mount', path.join(SAMPLES, 'jf-md5-gzip.jigdo'), mnt, '--local', `Parts=${SAMPLE_PARTS}`, '--mirror', 'Parts=http://127.0.0.1:9/', '--cache-dir', path.join(work, 'c')];
  let loaded: { cli: string[]; daemon: string[] };
  try {
    loaded = await loadedBy(args, log);
    const [name] = await readdir(mnt);
    assert.ok((await readFile(path.join(mnt, name!))).length > 0);
  } finally {
    const u = await runCli(['umount', mnt]);
    assert.equal(u.code, 0, u.stderr);
  }
  const after = await readFile(log, 'utf8');
  const daemon = after.split('\n').filter((l) => l.startsWith('daemon ')).map((l) => l.slice(7));
  assert.ok(daemon.length > 0 && loaded.cli.length > 0, 'both processes were seen');
  assert.deepEqual(undici(loaded.cli), []);
  assert.deepEqual(undici(daemon), [], 'the image was read whole: every part local, no request, no undici');
  assert.deepEqual(fuseNative(loaded.cli), [], 'the parent only checks the mountpoint and waits');
  assert.ok(fuseNative(daemon).length > 0, 'the daemon mounts with fuse-native');
});

test('bin/jigdofs run as a program starts node with MALLOC_ARENA_MAX=2 and UV_THREADPOOL_SIZE=24, or the values the user set', async () => {
  const out = path.join(work, 'arena.txt');
  // An --import hook in the node it starts writes down what that node sees (the shell line ran before it).
  const seen = `String(process.env.MALLOC_ARENA_MAX) + ' ' + String(process.env.UV_THREADPOOL_SIZE) + '\\n'`;
  const hook = `data:text/javascript,${encodeURIComponent(`import { appendFileSync } from 'node:fs'; appendFileSync(${JSON.stringify(out)}, ${seen});`)}`;
  const run = (extra: NodeJS.ProcessEnv) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: `--import=${hook}`, ...extra };
    for (const name of ['MALLOC_ARENA_MAX', 'UV_THREADPOOL_SIZE']) if (!(name in extra)) delete env[name];
    return promisify(execFile)(BIN, ['--version'], { env });
  };
  assert.equal((await run({})).stdout.trim(), '0.1.0');
  await run({ MALLOC_ARENA_MAX: '3', UV_THREADPOOL_SIZE: '5' });
  assert.deepEqual((await readFile(out, 'utf8')).trim().split('\n'), ['2 24', '3 5']);
});
