/**
 * The fstab/mount(8) helper's command line (`mount.fuse.jigdofs SOURCE TARGET -o OPTIONS`) turned into
 * `jigdofs mount` options: mount(8)'s own options dropped, FUSE's `allow_other` style accepted, values
 * kept whole after the first `=`, and anything jigdofs does not know refused by name.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fstabOptionsToFlags, parseHelperArgs } from '../../src/cli/fstab-options.js';
import { UsageError } from '../../src/format/errors.js';
import { runCli } from '../helpers/cli.js';

describe('fstab options', () => {
  test('mount(8), systemd and fstab-only options are dropped; jigdofs options become flags in order', () => {
    const flags = fstabOptionsToFlags('rw,noauto,user,nofail,_netdev,x-systemd.automount,comment=x,nosuid,nodev,scan=/srv/cds,local=Debian=/srv/mirror/debian,scan=/srv/more');
    assert.deepEqual(flags, ['--scan', '/srv/cds', '--local', 'Debian=/srv/mirror/debian', '--scan', '/srv/more']);
  });

  test('FUSE style names (allow_other, cache_dir) and booleans', () => {
    assert.deepEqual(fstabOptionsToFlags('allow_other,cache_dir=/var/cache/jigdofs,offline,quiet,direct_io'), [
      '--allow-other', '--cache-dir', '/var/cache/jigdofs', '--offline', '--quiet', '--direct-io',
    ]);
    assert.deepEqual(fstabOptionsToFlags('mirror=Debian=http://deb.example/debian/,log-file=/var/log/j.log'), [
      '--mirror', 'Debian=http://deb.example/debian/', '--log-file', '/var/log/j.log',
    ]);
  });

  test('unknown options, a missing value and a value on a switch are refused by name', () => {
    assert.throws(() => fstabOptionsToFlags('scan=/x,bogus=1'), (e: Error) => e instanceof UsageError && /"bogus=1" is not a jigdofs mount option/.test(e.message));
    assert.throws(() => fstabOptionsToFlags('image=x.iso'), /"image=x.iso" is not a jigdofs mount option/); // mount shows every image
    assert.throws(() => fstabOptionsToFlags('cache-dir'), /"cache-dir" needs a value/);
    assert.throws(() => fstabOptionsToFlags('offline=yes'), /"offline" takes no value/);
  });
});

describe('quoted values and sloppy options, as libmount passes them', () => {
  test('a comma inside double quotes is part of the value; the quotes are not', () => {
    assert.deepEqual(fstabOptionsToFlags('ro,scan="/srv/old,cds",local=Debian="/srv/a b,c"'), ['--scan', '/srv/old,cds', '--local', 'Debian=/srv/a b,c']);
    assert.throws(() => fstabOptionsToFlags('scan="/srv/x,ro'), (e: Error) => e instanceof UsageError && /a double quote is not closed/.test(e.message));
  });
  test("mount -s leaves out the options jigdofs does not know, with a warning; without it they are refused", () => {
    const warned: string[] = [];
    const call = parseHelperArgs(['x.jigdo', '/mnt', '-s', '-o', 'rw,bogus=1,scan=/srv/cds,frob'], (line) => warned.push(line));
    assert.deepEqual(call.flags, ['--scan', '/srv/cds']);
    assert.deepEqual(warned, ['mount option "bogus=1" is not a jigdofs mount option: left out (-s)', 'mount option "frob" is not a jigdofs mount option: left out (-s)']);
    assert.throws(() => parseHelperArgs(['x.jigdo', '/mnt', '-o', 'rw,bogus=1']), /"bogus=1" is not a jigdofs mount option/);
    // Sloppy is about unknown names only: a known option used wrongly is still refused.
    assert.throws(() => parseHelperArgs(['x.jigdo', '/mnt', '-s', '-o', 'scan']), /"scan" needs a value/);
  });
});

describe('helper command line', () => {
  test('as mount(8) calls it', () => {
    assert.deepEqual(parseHelperArgs(['/srv/x.jigdo', '/mnt/img', '-o', 'rw,scan=/srv/cds', '-n', '-t', 'fuse.jigdofs']), {
      source: '/srv/x.jigdo', mountpoint: '/mnt/img', flags: ['--scan', '/srv/cds'], fake: false,
    });
    assert.deepEqual(parseHelperArgs(['-v', 'http://h/x.jigdo', '/mnt/img', '-oallow_other', '-o', 'offline']).flags, ['--allow-other', '--offline']);
    assert.equal(parseHelperArgs(['-f', 'x.jigdo', '/mnt']).fake, true);
    assert.equal(parseHelperArgs(['-sv', 'x.jigdo', '/mnt']).fake, false);
  });

  test('a wrong call is a usage error', () => {
    assert.throws(() => parseHelperArgs(['x.jigdo']), /usage: mount\.fuse\.jigdofs/);
    assert.throws(() => parseHelperArgs(['x.jigdo', '/mnt', '-o']), /-o needs a value/);
    assert.throws(() => parseHelperArgs(['x.jigdo', '/mnt', '--frobnicate']), /unknown helper option --frobnicate/);
  });
});

describe("mount.fuse's call form is told from our commands by every name they answer to", () => {
  test('`jigdofs unmount DIR` is umount (its alias) and `jigdofs help umount` is help, not a mount of "unmount" or "help"', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-alias-'));
    try {
      const r = await runCli(['unmount', dir]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /nothing is mounted here/);
      const help = await runCli(['help', 'umount']);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /Usage: jigdofs umount/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
