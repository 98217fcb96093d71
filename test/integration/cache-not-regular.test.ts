/**
 * What a damaged cache folder or configuration holds in place of a file (from a review of a hostile cache): a FIFO
 * hung every command that opened it (a symlink in place of the shared count: unit/size-ledger).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildFixtures, type FixtureVariant } from '../helpers/fixtures.js';
import { assertCleanFailure, assertOk, runCli } from '../helpers/cli.js';
import { fileMd5 } from '../helpers/network.js';
import { forceUnmount, isMounted } from '../helpers/mount.js';

const run = promisify(execFile);
let work: string;
let v: FixtureVariant;

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-not-regular-'));
  v = (await buildFixtures()).variants['jf-md5-gzip'];
});
after(() => rm(work, { recursive: true, force: true }));

/** make-image of the small sample with a cache folder prepared by `plant`: it must finish, with the right image. */
async function makeImageWith(name: string, plant: (cache: string) => Promise<void>): Promise<string> {
  const cache = path.join(work, name);
  await mkdir(cache, { recursive: true });
  await plant(cache);
  const out = path.join(work, `${name}.iso`);
  const r = await runCli(['make-image', v.jigdo, '-o', out, '--cache-dir', cache, '--offline', '--scan', v.partsDir, '--keep-parts'], { timeoutMs: 30_000 });
  assertOk(r);
  assert.equal(await fileMd5(out), v.imageMd5);
  return cache;
}

test('a FIFO in place of the hash index, or among the locks, is passed over (every run waited on it for good)', async () => {
  await makeImageWith('fifo-index', (cache) => run('mkfifo', [path.join(cache, 'hash-index.jsonl')]).then(() => undefined));
  await makeImageWith('fifo-lock', async (cache) => {
    await mkdir(path.join(cache, 'parts', 'locks'), { recursive: true });
    await run('mkfifo', [path.join(cache, 'parts', 'locks', 'junk')]);
  });
});

test('a FIFO given as the configuration file is refused in one line (the command waited for a writer for good)', async () => {
  const fifo = path.join(work, 'config.fifo');
  await run('mkfifo', [fifo]);
  const r = await runCli(['info', v.jigdo, '--config', fifo], { timeoutMs: 20_000 });
  assertCleanFailure(r, fifo, /FIFO/);
  assertOk(await runCli(['info', v.jigdo, '--config', '/dev/null'], { timeoutMs: 20_000 })); // an empty configuration, as before
});

test("a FIFO where a mount's log goes under the cache fails the mount in one line (it hung, ignoring SIGTERM)", async () => {
  const cache = path.join(work, 'fifo-log');
  const mnt = path.join(work, 'mnt-fifo-log');
  await mkdir(path.join(cache, 'logs'), { recursive: true });
  await mkdir(mnt);
  await run('mkfifo', [path.join(cache, 'logs', `mount-${mnt.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_/, '')}.log`)]);
  try {
    const r = await runCli(['mount', v.jigdo, mnt, '--cache-dir', cache, '--offline', '--scan', v.partsDir], { timeoutMs: 20_000 });
    assertCleanFailure(r, path.join(cache, 'logs'), /FIFO/);
    assert.equal(await isMounted(mnt), false);
  } finally {
    if (await isMounted(mnt)) await forceUnmount(mnt);
  }
});
