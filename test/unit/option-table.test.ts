// The option table (src/cli/option-table.ts) drives commander, the configuration file and the README:
// README.md's table is exactly the rendered rows; commander has exactly the table's flags; each kind of
// value parses the same on the command line and in the configuration file, with each place's message;
// a flag beats the file, the file beats the default.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { NETWORK_DEFAULTS } from '../../src/network/network.js';
import { loadConfig } from '../../src/cli/config.js';
import { SOURCE_OPTIONS, readmeRows, sizeText } from '../../src/cli/option-table.js';
import { BOOLEAN, PATH, SECONDS_AS_MS, SIZE, count, fromCommandLine, sizeAtLeast, sizeOf, wholeNumber } from '../../src/cli/option-values.js';
import { addSourceOptions, resolveSettings, type SourceFlags } from '../../src/cli/options.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-options-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('README.md lists exactly the rows the option table renders, in order', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const header = '| option | meaning |\n|---|---|\n';
  const start = readme.indexOf(header);
  assert.ok(start >= 0, 'README.md has no option table');
  const body = readme.slice(start + header.length);
  const rows = body.slice(0, body.indexOf('\n\n')).split('\n');
  assert.deepEqual(rows, readmeRows());
});

test('commander gets exactly the flags of the table, with their defaults', () => {
  const cmd = addSourceOptions(new Command('x'));
  assert.deepEqual(cmd.options.map((o) => o.flags), SOURCE_OPTIONS.filter((o) => o.flags).map((o) => o.flags));
  const parsed = cmd.parse(['--local', 'A=/a', '--local', 'B=/b', '--timeout', '5'], { from: 'user' }).opts();
  assert.deepEqual(parsed.local, ['A=/a', 'B=/b']);
  assert.deepEqual(parsed.scan, []);
  assert.equal(parsed.memory, '128M');
  assert.equal(parsed.timeout, '5');
  assert.equal(parsed.offline, undefined);
  assert.equal(cmd.parse(['--no-offline'], { from: 'user' }).opts().offline, false);
});

test('sizes: units k/M/G/T (with i/B), fractions, plain bytes; anything else is no size', () => {
  assert.equal(sizeOf('4096'), 4096);
  assert.equal(sizeOf('512k'), 512 * 1024);
  assert.equal(sizeOf('64M'), 64 << 20);
  assert.equal(sizeOf('1.5G'), 1.5 * 1024 ** 3);
  assert.equal(sizeOf('2GiB'), 2 * 1024 ** 3);
  assert.equal(sizeOf(' 1T '), 1024 ** 4);
  for (const bad of ['', 'M', '-1M', '1.5.2G', '12Q', '1e6', 'ten']) assert.equal(sizeOf(bad), undefined, bad);
  assert.equal(sizeAtLeast(64 * 1024).parse('1k'), 64 * 1024);
  assert.equal(sizeAtLeast(64 * 1024).parse('1M'), 1 << 20);
  assert.equal(sizeAtLeast(64 * 1024).parse('x'), undefined);
  assert.deepEqual([20 * 1024 ** 3, 4 << 20, 1536 * 1024, 1000].map(sizeText), ['20G', '4M', '1536K', '1000']);
});

test('counts, seconds and booleans', () => {
  assert.equal(count(1).parse('8'), 8);
  assert.equal(count(0).parse('0'), 0);
  for (const bad of ['0', '-1', '1.5', 'x']) assert.equal(count(1).parse(bad), undefined, bad);
  assert.equal(SECONDS_AS_MS.parse('1.5'), 1500);
  assert.equal(SECONDS_AS_MS.parse('3600'), 3_600_000);
  for (const bad of ['0', '-2', '3601', 'soon']) assert.equal(SECONDS_AS_MS.parse(bad), undefined, bad);
  for (const yes of ['true', 'Yes', '1', 'ON']) assert.equal(BOOLEAN.parse(yes), true, yes);
  for (const no of ['false', 'no', '0', 'off']) assert.equal(BOOLEAN.parse(no), false, no);
  assert.equal(BOOLEAN.parse('maybe'), undefined);
  assert.equal(PATH.parse('rel/dir'), 'rel/dir', 'a command-line path is taken as given');
  assert.equal(PATH.parse('rel/dir', '/etc/x'), '/etc/x/rel/dir', 'a configuration path is relative to its file');
});

test('a bad command-line value is a usage error naming the option, worded as before the table', () => {
  assert.throws(() => fromCommandLine(SIZE, '--memory', 'lots'), { name: 'UsageError', message: '--memory: "lots" is not a size (examples: 512M, 2G, 1048576)' });
  const flags = (extra: Partial<SourceFlags>): SourceFlags => ({ local: [], scan: [], memory: '64M', quiet: true, config: path.join(work, 'none.ini'), ...extra });
  writeFileSync(path.join(work, 'none.ini'), '');
  assert.throws(() => resolveSettings(flags({ timeout: '0' })), { message: '--timeout: "0" is not a number of seconds (at least 0.001, at most 3600)' });
  assert.throws(() => resolveSettings(flags({ connections: '0' })), { message: '--connections: "0" is not a whole number of at least 1' });
  assert.throws(() => resolveSettings(flags({ retries: '-1' })), { message: '--retries: "-1" is not a whole number of at least 0' });
  assert.throws(() => resolveSettings(flags({ cacheSize: '20 gigs' })), { message: '--cache-size: "20 gigs" is not a size (examples: 512M, 2G, 1048576)' });
  assert.throws(() => resolveSettings(flags({ local: ['nolabel'] })), { message: '--local nolabel: expected LABEL=DIR' });
});

test('the configuration file: every key of the table, its messages, unknown keys warned about', () => {
  const file = path.join(work, 'all.ini');
  writeFileSync(
    file,
    '[cache]\ndir = sub/cache\nsize = 3G\n[network]\noffline = yes\ntimeout = 2.5\nconnections = 3\nretries = 0\nrange-size = 1k\nstreams-per-part = 2\ncolour = blue\n[mirrors]\nDebian = http://deb.example/debian/\n',
  );
  const c = loadConfig(file);
  assert.equal(c.cacheDir, path.join(work, 'sub/cache'));
  assert.equal(c.cacheSize, 3 * 1024 ** 3);
  assert.equal(c.offline, true);
  assert.equal(c.timeoutMs, 2500);
  assert.equal(c.connections, 3);
  assert.equal(c.retries, 0);
  assert.equal(c.rangeSize, 64 * 1024);
  assert.equal(c.streamsPerPart, 2);
  assert.deepEqual([...c.mirrors], [['Debian', ['http://deb.example/debian/']]]);
  assert.deepEqual(c.warnings, [`${file}: ignored unknown setting [network] colour`]);
  const bad = (text: string, message: string) => {
    writeFileSync(file, text);
    assert.throws(() => loadConfig(file), { message: `${file}: ${message}` });
  };
  bad('[cache]\nsize = huge\n', '[cache] size = "huge": not a size (examples: 512M, 20G)');
  bad('[network]\nconnections = 0\n', '[network] connections = "0": expected a whole number of at least 1');
  bad('[network]\ntimeout = soon\n', '[network] timeout = "soon": expected seconds, at least 0.001 and at most 3600');
  bad('[network]\noffline = maybe\n', '[network] offline = "maybe": expected true or false');
});

test('a flag beats the configuration file, which beats the defaults', () => {
  const file = path.join(work, 'some.ini');
  writeFileSync(file, '[network]\nconnections = 3\nretries = 5\noffline = true\n');
  const base: SourceFlags = { local: [], scan: [], memory: '64M', quiet: true, config: file };
  const fromFile = resolveSettings(base);
  assert.equal(fromFile.connections, 3);
  assert.equal(fromFile.retries, 5);
  assert.equal(fromFile.offline, true);
  assert.equal(fromFile.timeoutMs, NETWORK_DEFAULTS.timeoutMs);
  assert.equal(fromFile.streamsPerPart, NETWORK_DEFAULTS.streamsPerPart);
  assert.equal(fromFile.cacheSize, undefined, "no --cache-size: the cache's own default");
  assert.equal(fromFile.memory, 64 << 20);
  const fromFlags = resolveSettings({ ...base, connections: '7', offline: false, timeout: '4', cacheDir: 'here' });
  assert.equal(fromFlags.connections, 7);
  assert.equal(fromFlags.retries, 5);
  assert.equal(fromFlags.offline, false);
  assert.equal(fromFlags.timeoutMs, 4000);
  assert.equal(fromFlags.cacheDir, 'here');
});

test('a config error or warning about a huge key or value stays one short line (found by the fuzzer: the value was echoed whole)', () => {
  const file = path.join(work, 'huge.ini');
  const long = 'x'.repeat(100_000);
  writeFileSync(file, `[mirrors]\nDebian = ftp://${long}\n`);
  assert.throws(() => loadConfig(file), (err: Error) => err.message.length < 600 && err.message.includes('100008 characters') && err.message.startsWith(file));
  writeFileSync(file, `[cache]\n${long} = 1\n`);
  const c = loadConfig(file);
  assert.ok(c.warnings.length === 1 && c.warnings[0]!.length < 600, c.warnings[0]?.slice(0, 100));
});

test('a configuration file over 1 MiB, or a device, is refused in one line before it is parsed (the fuzzer: 6 MB of quotes took the INI parser past 300 MB)', () => {
  const file = path.join(work, 'big.ini');
  writeFileSync(file, `[cache]\nsize = 1G\n[Servers]\nL1=L3${'"'.repeat((1 << 20) + 100)}\n`);
  const started = Date.now();
  assert.throws(() => loadConfig(file), (err: Error) => err.message === `${file}: not a jigdofs configuration file: longer than 1 MiB`);
  assert.throws(() => loadConfig('/dev/zero'), (err: Error) => err.message === '/dev/zero: not a jigdofs configuration file: longer than 1 MiB');
  assert.ok(Date.now() - started < 2000, `${Date.now() - started} ms`);
  writeFileSync(file, `[cache]\nsize = 1G\n${'#'.repeat((1 << 20) - 20)}\n`);
  assert.equal(loadConfig(file).file, file, 'a file just under the limit is read');
});

test('a timeout under 1 ms is refused: it went on as 0 ms, which undici takes as no timeout (a stalled mirror hung for ever)', () => {
  for (const tiny of ['0.0001', '0.0004', '0.0009', '0.000']) assert.equal(SECONDS_AS_MS.parse(tiny), undefined, tiny);
  assert.equal(SECONDS_AS_MS.parse('0.001'), 1);
  assert.equal(SECONDS_AS_MS.parse('.5'), 500);
  // Decimal only: Number() took hex, binary, exponents and blanks.
  for (const odd of ['', ' ', '0x10', '0b11', '1e1', 'Infinity', '+5']) assert.equal(SECONDS_AS_MS.parse(odd), undefined, odd);
  const none = path.join(work, 'none.ini');
  writeFileSync(none, '');
  const flags: SourceFlags = { local: [], scan: [], memory: '64M', quiet: true, config: none, timeout: '0.0001' };
  assert.throws(() => resolveSettings(flags), { name: 'UsageError', message: '--timeout: "0.0001" is not a number of seconds (at least 0.001, at most 3600)' });
  const file = path.join(work, 'tiny-timeout.ini');
  writeFileSync(file, '[network]\ntimeout = 0.0004\n');
  assert.throws(() => loadConfig(file), { message: `${file}: [network] timeout = "0.0004": expected seconds, at least 0.001 and at most 3600` });
});

test('numbers are decimal digits only: Number() read "" and " " as 0, 0x10 as 16, 0b11 as 3, and took 1e15', () => {
  for (const odd of ['', ' ', '0x10', '0b11', '0o7', '1e15', '1.0', '+1', '-0', ' 3', '3 ', '9007199254740993']) {
    assert.equal(wholeNumber(odd), undefined, JSON.stringify(odd));
    assert.equal(count(0).parse(odd), undefined, JSON.stringify(odd));
  }
  assert.equal(wholeNumber('007'), 7);
  assert.equal(wholeNumber('9007199254740991'), Number.MAX_SAFE_INTEGER);
  const none = path.join(work, 'none.ini');
  writeFileSync(none, '');
  const flags = (extra: Partial<SourceFlags>): SourceFlags => ({ local: [], scan: [], memory: '64M', quiet: true, config: none, ...extra });
  assert.throws(() => resolveSettings(flags({ retries: '' })), { name: 'UsageError', message: '--retries: "" is not a whole number of at least 0' });
  assert.throws(() => resolveSettings(flags({ connections: '0x10' })), { name: 'UsageError', message: '--connections: "0x10" is not a whole number of at least 1' });
});

test('sizes are finite whole numbers of bytes with a strict suffix: 400 digits were Infinity, "1i" and "1ib" 1 byte', () => {
  const huge = '9'.repeat(400);
  for (const bad of [huge, `${huge}T`, '9'.repeat(17), '8192T', '1i', '1ib', '1iB', '1bb', '1kk', '1kbi', '0x10', '1e3k', 'k']) assert.equal(sizeOf(bad), undefined, bad);
  assert.deepEqual(['1', '1B', '1b', '1kb', '1KiB', '2GiB', '64MB', '4 M', '8191T'].map(sizeOf), [1, 1, 1, 1024, 1024, 2 * 1024 ** 3, 64 << 20, 4 << 20, 8191 * 1024 ** 4]);
  const none = path.join(work, 'none.ini');
  writeFileSync(none, '');
  const flags: SourceFlags = { local: [], scan: [], memory: `${huge}T`, quiet: true, config: none };
  assert.throws(() => resolveSettings(flags), { name: 'UsageError', message: `--memory: "${huge}T" is not a size (examples: 512M, 2G, 1048576)` });
  assert.throws(() => resolveSettings({ ...flags, memory: '64M', cacheSize: huge }), { name: 'UsageError', message: `--cache-size: "${huge}" is not a size (examples: 512M, 2G, 1048576)` });
});

test('a configuration file that starts with a UTF-8 byte order mark keeps its first section (it was lost, with a warning)', () => {
  const file = path.join(work, 'bom.ini');
  writeFileSync(file, '\uFEFF[network]\noffline = true\n[cache]\nsize = 1G\n');
  const c = loadConfig(file);
  assert.deepEqual(c.warnings, []);
  assert.equal(c.offline, true);
  assert.equal(c.cacheSize, 1024 ** 3);
  const none: SourceFlags = { local: [], scan: [], memory: '64M', quiet: true, config: file };
  assert.equal(resolveSettings(none).offline, true, 'offline, not the network');
});

test('the configuration file: ; and # start a comment only at the start or after a space; a URL or path keeps them', () => {
  const file = path.join(work, 'separators.ini');
  writeFileSync(
    file,
    '; comment\n# comment\n[mirrors]\nDebian = http://mirror.example/debian;v2/   ; my mirror\nOther[] = http://a.example/x;y;z/\t# tab\nOther[] = "http://b.example/q;r/"\n' +
      'Esc = http://c.example/s\\;t/\n[cache]\ndir = /srv/C#/cache ;where\n[network]\ntimeout = 30 ; seconds\nretries = 1\t#\n',
  );
  const c = loadConfig(file);
  assert.deepEqual(c.warnings, []);
  assert.deepEqual([...c.mirrors], [
    ['Debian', ['http://mirror.example/debian;v2/']],
    ['Other', ['http://a.example/x;y;z/', 'http://b.example/q;r/']],
    ['Esc', ['http://c.example/s;t/']],
  ]);
  assert.equal(c.cacheDir, '/srv/C#/cache');
  assert.equal(c.timeoutMs, 30_000);
  assert.equal(c.retries, 1);
  // A mirror URL with a fragment: the part paths appended after it would never reach the server.
  writeFileSync(file, '[mirrors]\nDebian = http://x.example/debian#main\n');
  assert.throws(() => loadConfig(file), {
    message: `${file}: [mirrors] Debian = "http://x.example/debian#main": "http://x.example/debian#main" holds "#", which starts a URL fragment (never sent to the server): write it as %23`,
  });
  const none = path.join(work, 'none.ini');
  writeFileSync(none, '');
  assert.throws(() => resolveSettings({ local: [], scan: [], memory: '64M', quiet: true, config: none, mirror: ['D=http://x.example/d#/'] }), { name: 'UsageError', message: /^--mirror D=http:\/\/x\.example\/d#\/: .* holds "#"/ });
});
