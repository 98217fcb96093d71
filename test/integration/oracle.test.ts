/**
 * jigdo-file is the oracle: on the same inputs, `missing` prints what `jigdo-file print-missing-all` prints,
 * `verify` agrees with `jigdo-file verify`, and `make-image` writes what `jigdo-file make-image` writes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildFixtures, EMPTY_MD5_B64, type FixtureSet, type VariantName } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';

const run = promisify(execFile);
let fx: FixtureSet;
let work: string;
before(async () => {
  fx = await buildFixtures();
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-oracle-'));
});

after(() => rm(work, { recursive: true, force: true }));

/** Exit code of a command that may fail, with its output. */
async function exec(cmd: string, args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(cmd, args, { cwd, maxBuffer: 1 << 26 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const VARIANTS: VariantName[] = ['jf-md5-gzip', 'jf-sha256-gzip', 'jf-md5-bzip2', 'jf-sha256-bzip2', 'jte-md5-gzip', 'jte-sha256-bzip2', 'ext4', 'nomatch'];

describe('missing = jigdo-file print-missing-all (no local parts)', () => {
  for (const name of VARIANTS) {
    test(name, async () => {
      const v = fx.variants[name];
      const oracle = await exec('jigdo-file', ['print-missing-all', `--jigdo=${v.jigdo}`, `--template=${v.template}`, `--image=${path.join(work, 'absent.iso')}`], work);
      assert.equal(oracle.code, 0, oracle.stderr);
      const ours = await runCli(['missing', v.jigdo, '--template', v.template, '--cache-dir', path.join(work, 'cache')], { cwd: work });
      assert.equal(ours.code, 0, ours.stderr);
      // One deliberate difference (spec §7): a zero-length part is always available to us, while jigdo-file
      // never finds one and lists it as missing forever.
      const expected = oracle.stdout
        .split('\n\n')
        .filter((block) => !block.includes(`:${EMPTY_MD5_B64}`))
        .join('\n\n');
      if (name === 'jte-md5-gzip') assert.notEqual(expected, oracle.stdout, 'the fixture has a zero-length part');
      assert.equal(ours.stdout, expected);
    });
  }
});

describe('verify agrees with jigdo-file verify', () => {
  for (const name of ['jf-md5-gzip', 'jf-sha256-bzip2', 'jte-sha256-bzip2'] as const) {
    test(name, async () => {
      const v = fx.variants[name];
      const good = await exec('jigdo-file', ['verify', `--image=${v.image}`, `--template=${v.template}`], work);
      const oursGood = await runCli(['verify', v.jigdo, v.image, '--template', v.template, '--cache-dir', path.join(work, 'cache')]);
      assert.equal(good.code, 0);
      assert.equal(oursGood.code, 0, oursGood.stderr);
      const bad = path.join(work, `${name}-bad.iso`);
      await copyFile(v.image, bad);
      const fh = await open(bad, 'r+');
      await fh.write(Buffer.from([0xff ^ (await readFile(v.image))[v.imageSize >> 1]!]), 0, 1, v.imageSize >> 1);
      await fh.close();
      const oracleBad = await exec('jigdo-file', ['verify', `--image=${bad}`, `--template=${v.template}`], work);
      const oursBad = await runCli(['verify', v.jigdo, bad, '--template', v.template, '--cache-dir', path.join(work, 'cache')]);
      assert.notEqual(oracleBad.code, 0);
      assert.equal(oursBad.code, 1);
      assert.match(oursBad.stdout, new RegExp(`FAILED: .*\\n  bytes \\d+\\.\\.\\d+`));
      const [, from, to] = /bytes (\d+)\.\.(\d+)/.exec(oursBad.stdout)!;
      assert.ok(Number(from) <= v.imageSize >> 1 && v.imageSize >> 1 <= Number(to), 'the reported region holds the flipped byte');
    });
  }
});

describe('make-image writes what jigdo-file make-image writes', () => {
  for (const name of ['jf-md5-gzip', 'jf-sha256-bzip2', 'ext4'] as const) {
    test(name, async () => {
      const v = fx.variants[name];
      const theirs = path.join(work, `${name}.jigdo-file.img`);
      const ours = path.join(work, `${name}.jigdofs.img`);
      const o = await exec('jigdo-file', ['make-image', '-r', 'quiet', `--image=${theirs}`, `--jigdo=${v.jigdo}`, `--template=${v.template}`, '--no-cache', v.partsDir], work);
      assert.equal(o.code, 0, o.stderr);
      const r = await runCli(['make-image', v.jigdo, '-o', ours, '--scan', v.partsDir, '--cache-dir', path.join(work, 'cache')]);
      assert.equal(r.code, 0, r.stderr);
      const sum = async (f: string) => createHash('sha256').update(await readFile(f)).digest('hex');
      assert.equal(await sum(ours), await sum(theirs));
      assert.equal(await sum(ours), v.imageSha256);
      await rm(theirs);
      await rm(ours);
    });
  }
});
