// Option values through the CLI: a value that is no value (a timeout that rounds to 0 ms, a number in hex or with an
// exponent, an empty string, a size past what JavaScript holds exactly) is a usage error naming the option (exit 2),
// or the configuration file's one-line error (exit 1); never taken as something else.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SAMPLES, assertCleanFailure, describeRun, runCli } from '../helpers/cli.js';

const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-option-values-'));
after(() => rmSync(work, { recursive: true, force: true }));
const JIGDO = path.join(SAMPLES, 'jf-md5-gzip.jigdo');
let runs = 0;
const info = (args: string[]) => runCli(['info', JIGDO, '--cache-dir', path.join(work, `cache-${++runs}`), '--offline', ...args], { timeoutMs: 30_000 });

/** Exit 2 with one line naming `option` and quoting `value`. */
async function assertUsageError(args: string[], option: string, value: string): Promise<void> {
  const r = await info(args);
  assert.equal(r.code, 2, describeRun(r));
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, describeRun(r));
  assert.ok(lines[0]!.startsWith(`jigdofs: ${option}: "${value}" `), describeRun(r));
}

test('--timeout under 1 ms is a usage error (it rounded to 0 ms: no timeout at all)', async () => {
  await assertUsageError(['--timeout', '0.0001'], '--timeout', '0.0001');
});

test('timeout = 0.0004 in the configuration file is its one-line error', async () => {
  const config = path.join(work, 'tiny.ini');
  writeFileSync(config, '[network]\ntimeout = 0.0004\n');
  const r = await info(['--config', config]);
  assertCleanFailure(r, config, /\[network\] timeout = "0\.0004": expected seconds, at least 0\.001/);
});

test('a background mount with --log-file and a bad configuration file says why on the terminal, not "see LOG"', async () => {
  const config = path.join(work, 'bad-mount.ini');
  writeFileSync(config, '[network]\ntimeout = soon\n');
  const mnt = path.join(work, 'mnt');
  mkdirSync(mnt);
  const log = path.join(work, 'mount.log');
  const r = await runCli(['mount', JIGDO, mnt, '--cache-dir', path.join(work, `cache-${++runs}`), '--offline', '--config', config, '--log-file', log], { timeoutMs: 30_000 });
  assertCleanFailure(r, config, /\[network\] timeout = "soon": expected seconds/);
  assert.ok(!readFileSync('/proc/mounts', 'utf8').includes(mnt), 'nothing mounted');
  assert.ok(!existsSync(log), 'no daemon was started');
});

test('numbers: blanks, hex, binary and exponents are usage errors naming the option', async () => {
  await assertUsageError(['--retries', ''], '--retries', '');
  await assertUsageError(['--retries', ' '], '--retries', ' ');
  await assertUsageError(['--connections', '0x10'], '--connections', '0x10');
  await assertUsageError(['--connections', '0b11'], '--connections', '0b11');
  await assertUsageError(['--retries', '1e15'], '--retries', '1e15');
});

test('sizes past 2^53 bytes and loose suffixes are usage errors naming the option (not exit 1 from lru-cache)', async () => {
  const huge = '9'.repeat(400);
  await assertUsageError(['--memory', `${huge}T`], '--memory', `${huge}T`);
  await assertUsageError(['--cache-size', huge], '--cache-size', huge);
  await assertUsageError(['--memory', '1i'], '--memory', '1i');
  await assertUsageError(['--cache-size', '1ib'], '--cache-size', '1ib');
});

test("serve's --port and --drain-timeout, make-template's --min-length: digits only", async () => {
  const cases = [['--port', '', '0 to 65535'], ['--port', '0x1f90', '0 to 65535'], ['--drain-timeout', '', '0 to 86400'], ['--max-clients', '1e3', '1 to 100000']] as const;
  for (const [flag, value, range] of cases) {
    const r = await runCli(['serve', JIGDO, '--offline', '--cache-dir', path.join(work, `cache-${++runs}`), flag, value], { timeoutMs: 30_000 });
    assert.equal(r.code, 2, describeRun(r));
    assert.equal(r.stderr, value === '' ? `jigdofs: ${flag}: "" is empty: give a value\n` : `jigdofs: ${flag}: "${value}" is not a whole number from ${range}\n`, describeRun(r));
  }
  const r = await runCli(['make-template', path.join(work, 'none.iso'), '--min-length', '0x400'], { timeoutMs: 30_000 });
  assert.equal(r.code, 2, describeRun(r));
  assert.equal(r.stderr, 'jigdofs: --min-length 0x400: expected a whole number from 256 to 1048576\n', describeRun(r));
});

test('an empty value (--scan=, --image=, --config=, --memory=) is a usage error naming the option (--scan= scanned the current folder, --image= took the first image)', async () => {
  for (const option of ['--scan', '--local', '--image', '--config', '--memory', '--template']) {
    const r = await info([`${option}=`]);
    assert.equal(r.code, 2, `${option}: ${describeRun(r)}`);
    assert.equal(r.stderr, `jigdofs: ${option}: "" is empty: give a value\n`, option);
  }
  // A command's own options too: `serve --host=` listened on every interface.
  for (const args of [['serve', JIGDO, '--offline', '--port', '0', '--host='], ['make-template', path.join(work, 'none.iso'), '-j', ''], ['mount', JIGDO, work, '--log-file=']]) {
    const r = await runCli(args, { timeoutMs: 30_000 });
    assert.equal(r.code, 2, describeRun(r));
    assert.match(r.stderr, /^jigdofs: (--host|--jigdo|--log-file): "" is empty: give a value\n$/, describeRun(r));
  }
});
