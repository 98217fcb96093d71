/**
 * The spare daemon (src/cli/spare-daemon.ts): bin/jigdofs starts a background mount's daemon before the CLI has
 * loaded, and its output reaches the log file through a relay. Its output must land in the log file, a mount
 * the parent refuses must leave no process behind, and the mount must outlive its relay.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SAMPLES, SAMPLE_PARTS, runCli } from '../helpers/cli.js';
import { isMounted, mountJigdo } from '../helpers/mount.js';
import { waitFor } from '../helpers/network.js';
import { pidAlive } from '../../src/util/pid.js';

const JIGDO = path.join(SAMPLES, 'jf-md5-gzip.jigdo');
let work: string;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-spare-'));
});
after(() => rm(work, { recursive: true, force: true }));

/** Live processes: pid and their arguments. */
async function processes(): Promise<Array<{ pid: number; args: string[] }>> {
  const out: Array<{ pid: number; args: string[] }> = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline) out.push({ pid: Number(name), args: cmdline.split('\0').filter(Boolean) });
  }
  return out;
}

/** The relay of a daemon: the process whose stdout is that log file. */
async function relayOf(logFile: string): Promise<number[]> {
  const found: number[] = [];
  for (const p of await processes()) {
    if (await readlink(`/proc/${p.pid}/fd/1`).then((l) => l === logFile, () => false)) found.push(p.pid);
  }
  return found;
}

// A daemon that spins (as one did that died on its own log writes) must fail the test, not hang it.
const LIMIT = { timeout: 60_000 };

test("a background mount's daemon writes its log through the relay, which ends with it", LIMIT, async () => {
  const m = await mountJigdo(JIGDO, ['--local', `Parts=${SAMPLE_PARTS}`]);
  const logFile = path.join(path.dirname(m.cacheDir), 'daemon.log');
  try {
    const pid = await m.pid();
    // The spare's stderr is the relay's socket; a daemon spawned by the CLI would have the log file itself.
    assert.match(await readlink(`/proc/${pid}/fd/2`), /^socket:/);
    const relays = await relayOf(logFile);
    assert.equal(relays.length, 1, `one relay writes ${logFile}`);
    assert.deepEqual((await processes()).find((p) => p.pid === relays[0])?.args, ['cat']);
    await waitFor(async () => (await m.log()).includes(`at ${m.mnt}`), 5000, 'the daemon logged its mount');
    assert.equal((await stat(logFile)).mode & 0o777, 0o600, 'the log is private');
    assert.equal((await m.umount()).code, 0);
    await waitFor(async () => !pidAlive(relays[0]!), 5000, 'the relay ended with the daemon');
    assert.match(await m.log(), /unmounted /);
  } finally {
    await m.cleanup();
  }
});

test('a mount the parent refuses leaves neither the spare nor its relay behind', LIMIT, async () => {
  const mnt = path.join(work, 'not-empty');
  await mkdir(mnt);
  await writeFile(path.join(mnt, 'file'), 'x');
  const relaysBefore = (await processes()).filter((p) => p.args.includes('jigdofs-log-relay')).length;
  const r = await runCli(['mount', JIGDO, mnt, '--local', `Parts=${SAMPLE_PARTS}`, '--cache-dir', path.join(work, 'cache')]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /not-empty/);
  const ours = async () => (await processes()).filter((p) => p.args.includes(mnt) || p.args.includes('jigdofs-log-relay'));
  await waitFor(async () => (await ours()).length <= relaysBefore, 5000, 'the spare and its relay ended');
  assert.deepEqual((await ours()).filter((p) => p.args.includes(mnt)), []);
  assert.equal(await isMounted(mnt), false);
  assert.equal(existsSync(path.join(work, 'cache')), false, 'the parent refused before the cache; the spare touched nothing');
});

test('a usage error (an option without its value) leaves nothing behind either', LIMIT, async () => {
  const cwd = path.join(work, 'cwd');
  const mnt = path.join(work, 'mnt-usage');
  await mkdir(cwd);
  await mkdir(mnt);
  for (const option of ['--cache-dir', '--log-file', '--template']) {
    const r = await runCli(['mount', JIGDO, mnt, '--local', `Parts=${SAMPLE_PARTS}`, option], { cwd });
    assert.equal(r.code, 2, `${option}: ${r.stderr}`);
    // The spare parsed what the parent did: no folder or file named after --foreground, no mount, no process.
    await waitFor(async () => (await processes()).every((p) => !p.args.includes(mnt)), 5000, 'the spare ended');
    assert.deepEqual(await readdir(cwd), [], option);
    assert.equal(await isMounted(mnt), false);
  }
});

test('the mount outlives its relay: a killed relay costs the log, not the mount', LIMIT, async () => {
  const empty = path.join(work, 'no-parts');
  await mkdir(empty, { recursive: true });
  const m = await mountJigdo(JIGDO, ['--local', `Parts=${empty}`]);
  try {
    const [relay] = await relayOf(path.join(path.dirname(m.cacheDir), 'daemon.log'));
    assert.ok(relay, 'the relay was found');
    process.kill(relay, 'SIGKILL');
    await waitFor(async () => !pidAlive(relay), 5000, 'the relay is gone');
    // Every part is missing: reading the image fails with EIO, and the daemon logs why into the dead relay.
    const [name] = await readdir(m.mnt);
    const fh = await open(m.file(name!), 'r');
    try {
      await assert.rejects(readFile(fh), /EIO/);
    } finally {
      await fh.close();
    }
    await new Promise((resolve) => setTimeout(resolve, 300)); // the failed write's error is reported asynchronously
    assert.equal(await isMounted(m.mnt), true);
    const pid = await m.pid();
    assert.ok(pidAlive(pid));
    assert.equal((await m.umount()).code, 0);
  } finally {
    await m.cleanup();
  }
});
