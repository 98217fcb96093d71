// A hostile .jigdo (issue 7, items 2, 4, 5, 13, 14) through the CLI: a gzip bomb, [Include]s of devices
// and FIFOs, a template name that decodes to `../`, a % that starts no escape, a fan-out of labels in
// [Servers], and Filename= values that would write outside the current folder. Each is one clean line
// (or a warning), never a crash, a hang, an exhausted memory or a file read or written where it must not be.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { copyFile, mkdir, readdir, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { SAMPLES, SAMPLE_PARTS, assertCleanFailure, assertOk, describeRun, runCli, type CliOptions, type CliResult } from '../helpers/cli.js';
import { startMirror } from '../helpers/mirror-server.js';
import { isMounted, forceUnmount } from '../helpers/mount.js';
import { fileMd5 } from '../helpers/hash.js';
import { E, data, template } from '../helpers/template-bytes.js';

const run = promisify(execFile);
const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-hostile-'));
after(() => rmSync(work, { recursive: true, force: true }));

const IMAGE_MD5 = '784af77770a40eb11678baaea6484bff';
const JIGDO_TEXT = readFileSync(path.join(SAMPLES, 'jf-md5-gzip.jigdo'), 'utf8');
const TEMPLATE = path.join(SAMPLES, 'jf-md5-gzip.template');
let runs = 0;
/** A cache folder of its own per run, offline unless told otherwise. */
const cli = (args: string[], opts: CliOptions & { online?: boolean } = {}): Promise<CliResult> =>
  runCli([...args, '--cache-dir', path.join(work, `cache-${++runs}`), ...(opts.online ? [] : ['--offline'])], { timeoutMs: 30_000, ...opts });

/** A folder holding `name` (the sample .jigdo, edited) and the sample template beside it. */
async function jigdoDir(dir: string, name: string, text: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await copyFile(TEMPLATE, path.join(dir, 'jf-md5-gzip.template'));
  await writeFile(path.join(dir, name), text);
  return path.join(dir, name);
}

// ---------------------------------------------------------------------------------------------
// Item 2: memory and endless reads

test('a 1.6 MB gzip bomb of [Parts] lines (600 MB once gunzipped): one clean line, exit 1, quickly, in a small heap', async () => {
  const dir = path.join(work, 'bomb');
  await mkdir(dir);
  const head = gzipSync('[Jigdo]\nVersion=1.2\n[Image]\nFilename=x.iso\nTemplate=x.template\n[Parts]\n');
  // 4 long lines repeated compress best (~380:1): one 64 MiB member, concatenated 9 times (multi-member
  // gzip is one valid stream, spec §4.1).
  const lines = Array.from({ length: 4 }, (_, i) => `${createHash('md5').update(String(i)).digest('base64url')}=Parts:pool/main/${'p'.repeat(1000)}/${i}.deb\n`).join('');
  const member = gzipSync(lines.repeat(Math.ceil((64 << 20) / lines.length)), { level: 9 });
  const bomb = Buffer.concat([head, ...Array.from({ length: 9 }, () => member)]);
  assert.ok(bomb.length < 2e6, `bomb is ${bomb.length} bytes`);
  const file = path.join(dir, 'bomb.jigdo');
  await writeFile(file, bomb);
  const cacheDir = path.join(dir, 'cache');
  // 128 MB of V8 heap: the bomb's text may be read only up to the limit, and never held whole.
  const env = { ...process.env, NODE_OPTIONS: '--max-old-space-size=128', XDG_CACHE_HOME: dir, XDG_CONFIG_HOME: dir, JIGDOFS_DEBUG: '' };
  const r = await runCli(['info', file, '--cache-dir', cacheDir, '--offline'], { env, timeoutMs: 60_000 });
  assertCleanFailure(r, file, /too big for a \.jigdo: once gunzipped, more than 256 MiB/);
  assert.ok(r.ms < 30_000, `took ${r.ms} ms`);
  assert.deepEqual(await readdir(cacheDir).catch(() => []), [], 'nothing left in the cache');
});

test('[Include] of /dev/zero, a FIFO and a 300 MiB file: a warning each, never an endless read', async () => {
  const dir = path.join(work, 'include-devices');
  await mkdir(dir);
  await run('mkfifo', [path.join(dir, 'fifo')]);
  await writeFile(path.join(dir, 'huge.jigdo'), '');
  await truncate(path.join(dir, 'huge.jigdo'), 300 << 20); // sparse: costs no disk
  const file = await jigdoDir(dir, 'x.jigdo', `${JIGDO_TEXT}[Include /dev/zero]\n[Include fifo]\n[Include huge.jigdo]\n`);
  const r = await cli(['info', file], { timeoutMs: 20_000 });
  assertOk(r);
  const warnings = r.stdout.split('\n').filter((l) => l.startsWith('Warning:'));
  assert.equal(warnings.length, 3, describeRun(r));
  assert.match(warnings[0]!, /line 20: cannot read \[Include \/dev\/zero\]: \/dev\/zero: .*a device, not a regular file/);
  assert.match(warnings[1]!, /cannot read \[Include fifo\]: .*fifo: .*a FIFO, not a regular file/);
  assert.match(warnings[2]!, /cannot read \[Include huge\.jigdo\]: .*huge\.jigdo: too big for a \.jigdo: more than 256 MiB/);
  assert.match(r.stdout, /3 \[Parts\] lines/);
});

test('a .jigdo that is /dev/zero, a FIFO or a 300 MiB file: one clean line, exit 1, no hang', async () => {
  const dir = path.join(work, 'main-devices');
  await mkdir(dir);
  await run('mkfifo', [path.join(dir, 'fifo.jigdo')]);
  await writeFile(path.join(dir, 'huge.jigdo'), '');
  await truncate(path.join(dir, 'huge.jigdo'), 300 << 20);
  const [zero, fifo, huge] = await Promise.all([
    cli(['info', '/dev/zero'], { timeoutMs: 15_000 }),
    cli(['make-image', path.join(dir, 'fifo.jigdo'), '-o', path.join(dir, 'x.iso')], { timeoutMs: 15_000 }),
    cli(['missing', path.join(dir, 'huge.jigdo')], { timeoutMs: 15_000 }),
  ]);
  assertCleanFailure(zero, '/dev/zero', /a device, not a regular file/);
  assertCleanFailure(fifo, path.join(dir, 'fifo.jigdo'), /a FIFO, not a regular file/);
  assertCleanFailure(huge, path.join(dir, 'huge.jigdo'), /too big for a \.jigdo: more than 256 MiB/);
  assert.deepEqual((await readdir(dir)).sort(), ['fifo.jigdo', 'huge.jigdo']);
});

test('a template that is /dev/zero or a FIFO (Template= or --template): one clean line, exit 1, no hang', async () => {
  const dir = path.join(work, 'template-devices');
  await mkdir(dir);
  await run('mkfifo', [path.join(dir, 'fifo.template')]);
  const zero = await jigdoDir(dir, 'zero.jigdo', JIGDO_TEXT.replace('Template=jf-md5-gzip.template', 'Template=/dev/zero'));
  const [a, b] = await Promise.all([
    cli(['info', zero], { timeoutMs: 15_000 }),
    cli(['make-image', path.join(dir, 'zero.jigdo'), '--template', path.join(dir, 'fifo.template'), '-o', path.join(dir, 'x.iso')], { timeoutMs: 15_000 }),
  ]);
  assertCleanFailure(a, '/dev/zero', /cannot be used as the template: it is a device or socket/);
  assertCleanFailure(b, path.join(dir, 'fifo.template'), /cannot be used as the template: it is a FIFO/);
  assert.equal(existsSync(path.join(dir, 'x.iso')), false);
});

// ---------------------------------------------------------------------------------------------
// Item 4: a remote .jigdo naming the template

test('a remote Template=..%2Fname never finds a local file outside the current folder; a % that starts no escape is asked for as %25, as wget asks', async () => {
  const dir = path.join(work, 'remote-template');
  const served = path.join(dir, 'served');
  const cwd = path.join(dir, 'a', 'cwd');
  await mkdir(served, { recursive: true });
  await mkdir(cwd, { recursive: true });
  // The right template, where `..%2Fsecret.template` decoded against the current folder would reach.
  await copyFile(TEMPLATE, path.join(dir, 'a', 'secret.template'));
  const withTemplate = (t: string) => JIGDO_TEXT.replace('Template=jf-md5-gzip.template', `Template=${t}`);
  await writeFile(path.join(served, 'escape.jigdo'), withTemplate('..%2Fsecret.template'));
  await writeFile(path.join(served, 'malformed.jigdo'), withTemplate('bad%zz.template'));
  await copyFile(TEMPLATE, path.join(served, 'bad%zz.template')); // the file of that name (the server decodes %25)
  const mirror = await startMirror({ root: served });
  try {
    const net = ['--retries', '0', '--timeout', '5'];
    const escape = await cli(['missing', `${mirror.url}escape.jigdo`, ...net], { cwd, online: true });
    // The template is not on the server: with no local file taken, that is the (clean) failure.
    assertCleanFailure(escape, /secret\.template/);
    assert.doesNotMatch(escape.stdout, /Template: .*secret\.template/);
    assert.ok(mirror.requests.some((q) => q.method === 'GET' && q.path.includes('secret.template')), 'the template was asked of the server');
    const malformed = await cli(['info', `${mirror.url}malformed.jigdo`, ...net], { cwd, online: true });
    assert.equal(malformed.code, 0, describeRun(malformed));
    assert.match(malformed.stdout, /^Template: .*\.template, 2,076 bytes/m);
    assert.ok(mirror.requests.some((q) => q.method === 'GET' && q.path === '/bad%zz.template'), 'the file named bad%zz.template was asked for');
  } finally {
    await mirror.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Item 5: a fan-out of labels in [Servers]

/** 6 levels of 8 values each: every part expands to 8^6 = 262,144 candidate URLs. */
function fanOutServers(): string {
  const labels = ['Parts', 'L1', 'L2', 'L3', 'L4', 'L5'];
  const lines: string[] = [];
  labels.forEach((label, level) => {
    for (let v = 0; v < 8; v++) lines.push(level < 5 ? `${label}=${labels[level + 1]}:d${v}/` : `${label}=http://127.0.0.1:9/m${v}/`);
  });
  return `[Servers]\n${lines.join('\n')}\n`;
}

test('a fan-out of labels in [Servers] (262,144 URLs per part): local parts are still found, missing answers quickly', async () => {
  const dir = path.join(work, 'fan-out');
  const file = await jigdoDir(dir, 'fan.jigdo', JIGDO_TEXT.replace(/\[Servers\]\n[^\n]*\n/, fanOutServers()));
  const out = (n: string) => path.join(dir, n);
  const [scan, local, missingScan, missingAll] = await Promise.all([
    cli(['make-image', file, '--scan', SAMPLE_PARTS, '-o', out('scan.iso')]),
    cli(['make-image', file, '--local', `Parts=${SAMPLE_PARTS}`, '-o', out('local.iso')]),
    cli(['missing', file, '--scan', SAMPLE_PARTS], { timeoutMs: 20_000 }),
    cli(['missing', file], { timeoutMs: 20_000 }),
  ]);
  assertOk(scan);
  assert.equal(await fileMd5(out('scan.iso')), IMAGE_MD5);
  // --local Parts=DIR maps `Parts:a.bin` to DIR/a.bin: no mirror expansion is needed for it.
  assertOk(local);
  assert.equal(await fileMd5(out('local.iso')), IMAGE_MD5);
  assertOk(missingScan);
  assert.match(missingScan.stderr, /0 of 3 parts missing/);
  assertOk(missingAll);
  assert.match(missingAll.stderr, /3 of 3 parts missing/);
  const blocks = missingAll.stdout.trim().split('\n\n');
  assert.equal(blocks.length, 3);
  for (const block of blocks) {
    const urls = block.split('\n');
    assert.ok(urls.length > 0 && urls.length <= 256, `${urls.length} candidates`);
    assert.match(urls[0]!, /^http:\/\/127\.0\.0\.1:9\/m0\/d0\/d0\/d0\/d0\/d0\/(a\.bin|sub\/b-copy\.bin|sub\/c\.bin)$/);
  }
});

// ---------------------------------------------------------------------------------------------
// Item 14: Filename= must be a plain file name

test('Filename=.., a/b/.., ., stdio: or x/: make-image refuses, naming the .jigdo and line, and writes nothing', async () => {
  const names = ['..', 'a/b/..', '.', 'stdio:', 'x.iso/', '../..'];
  await Promise.all(
    names.map(async (name, i) => {
      const dir = path.join(work, `filename-${i}`);
      const cwd = path.join(dir, 'cwd');
      await mkdir(cwd, { recursive: true });
      const file = await jigdoDir(dir, 'x.jigdo', JIGDO_TEXT.replace('Filename=image.iso', `Filename=${name}`));
      const r = await cli(['make-image', file, '--scan', SAMPLE_PARTS], { cwd });
      assertCleanFailure(r, `${file}: line 9`, /Filename=.* is not a plain file name/);
      assert.deepEqual((await readdir(dir)).sort(), ['cwd', 'jf-md5-gzip.template', 'x.jigdo'], name);
      assert.deepEqual(await readdir(cwd), [], name);
      assert.deepEqual((await readdir(work)).filter((f) => f.includes('.tmp') || f.includes('jigdofs-')), [], name);
    }),
  );
});

test('Filename with folders or stdio: (as the spec allows) is the leaf name, in the current folder', async () => {
  const dir = path.join(work, 'filename-leaf');
  const cwd = path.join(dir, 'cwd');
  await mkdir(cwd, { recursive: true });
  const file = await jigdoDir(dir, 'x.jigdo', JIGDO_TEXT.replace('Filename=image.iso', 'Filename=stdio:/srv/out/leaf.iso'));
  const r = await cli(['make-image', file, '--scan', SAMPLE_PARTS], { cwd });
  assertOk(r);
  assert.deepEqual(await readdir(cwd), ['leaf.iso']);
  assert.equal(await fileMd5(path.join(cwd, 'leaf.iso')), IMAGE_MD5);
});

test("mount of a .jigdo whose Filename holds terminal controls: the 'mounted' line shows them escaped", async () => {
  const dir = path.join(work, 'filename-c1');
  const mnt = path.join(dir, 'mnt');
  await mkdir(mnt, { recursive: true });
  const file = await jigdoDir(dir, 'x.jigdo', JIGDO_TEXT.replace('Filename=image.iso', 'Filename=img\u009b31m\u202eosi.exe'));
  try {
    const r = await runCli(['mount', file, mnt, '--cache-dir', path.join(dir, 'cache'), '--log-file', path.join(dir, 'log'), '--offline'], { timeoutMs: 20_000 });
    assertOk(r);
    assert.ok(r.stderr.includes(`mounted ${mnt}/img\\u009b31m\\u202eosi.exe (daemon pid`), describeRun(r));
    assert.doesNotMatch(r.stderr, /[\u0080-\u009f\u202e]/, describeRun(r));
  } finally {
    await runCli(['umount', mnt], { timeoutMs: 20_000 });
    await forceUnmount(mnt);
  }
});

test('mount of a .jigdo with Filename=..: one clean line at once, no mount left', async () => {
  const dir = path.join(work, 'filename-mount');
  const mnt = path.join(dir, 'mnt');
  await mkdir(mnt, { recursive: true });
  const file = await jigdoDir(dir, 'x.jigdo', JIGDO_TEXT.replace('Filename=image.iso', 'Filename=a/b/..'));
  try {
    const r = await runCli(['mount', file, mnt, '--cache-dir', path.join(dir, 'cache'), '--log-file', path.join(dir, 'log'), '--offline'], { timeoutMs: 20_000 });
    assertCleanFailure(r, `${file}: line 9`, /Filename=a\/b\/\.\. is not a plain file name/);
    assert.equal(await isMounted(mnt), false);
    assert.deepEqual(await readdir(mnt), []);
    assert.equal(existsSync(path.join(dir, 'a')), false);
  } finally {
    await forceUnmount(mnt);
  }
});

// ---------------------------------------------------------------------------------------------
// A valid template cut into hundreds of thousands of tiny regions or chunks (jigdo-file builds each in a second or two)

/** A folder of its own holding `tpl`, a .jigdo naming it (with its MD5) and, when given, the one `part` it lists. */
interface TinyRegions {
  dir: string;
  jigdo: string;
  /** The options that find the part (label A). */
  local: string[];
}

/** Writes `tpl`, a .jigdo naming it (with its MD5) and `part` (as A:z.bin, in parts/) into a folder of its own. */
async function tinyRegions(name: string, tpl: Buffer, part?: Buffer): Promise<TinyRegions> {
  const dir = path.join(work, name);
  await mkdir(path.join(dir, 'parts'), { recursive: true });
  await writeFile(path.join(dir, `${name}.template`), tpl);
  const md5 = (b: Buffer): string => createHash('md5').update(b).digest('base64url');
  const parts = part ? `${md5(part)}=A:z.bin\n` : '';
  if (part) await writeFile(path.join(dir, 'parts', 'z.bin'), part);
  const text = `[Jigdo]\nVersion=1.2\n[Image]\nFilename=${name}.iso\nTemplate=${name}.template\nTemplate-MD5Sum=${md5(tpl)}\n[Parts]\n${parts}`;
  const jigdo = path.join(dir, `${name}.jigdo`);
  await writeFile(jigdo, text);
  return { dir, jigdo, local: part ? ['--local', `A=${path.join(dir, 'parts')}`] : [] };
}

/** make-image of it, within a 160 MB V8 heap: right, in well under the time the run is given. */
async function buildsQuickly({ dir, jigdo, local }: TinyRegions, image: Buffer): Promise<void> {
  const out = path.join(dir, 'out.iso');
  const env = { ...process.env, NODE_OPTIONS: '--max-old-space-size=160', XDG_CACHE_HOME: dir, XDG_CONFIG_HOME: dir, JIGDOFS_DEBUG: '' };
  const r = await cli(['make-image', jigdo, '-o', out, ...local], { env, timeoutMs: 120_000 });
  assertOk(r);
  assert.equal(await fileMd5(out), createHash('md5').update(image).digest('hex'));
  assert.ok(r.ms < 60_000, `took ${r.ms} ms`);
}

test('262,143 raw regions of a byte: make-image in seconds (a listener per region made it quadratic: hours, deaf to signals)', async () => {
  const n = 262_143;
  const raw = Buffer.from(Array.from({ length: n }, (_, i) => (i * 7) & 255));
  const entries = [...Array.from({ length: n }, () => E.t2(1)), E.t5(n, createHash('md5').update(raw).digest())];
  await buildsQuickly(await tinyRegions('raw-regions', template([data(raw)], entries)), raw);
});

test('131,072 DATA chunks of a byte under one raw region: inflated a few at a time, not all at once', async () => {
  const n = 131_072;
  const raw = Buffer.from(Array.from({ length: n }, (_, i) => (i * 13) & 255));
  const chunks = Array.from({ length: n }, (_, i) => data(raw.subarray(i, i + 1)));
  await buildsQuickly(await tinyRegions('raw-chunks', template(chunks, [E.t2(n), E.t5(n, createHash('md5').update(raw).digest())])), raw);
});

test('one 1-byte part 131,072 times in a row: make-image in seconds, a bounded number of reads at once', async () => {
  const n = 131_072;
  const z = Buffer.from('Z');
  const sum = createHash('md5').update(z).digest();
  const image = Buffer.alloc(n, 'Z');
  const entries = [...Array.from({ length: n }, () => E.t6(1, sum)), E.t5(n, createHash('md5').update(image).digest())];
  await buildsQuickly(await tinyRegions('one-part', template([], entries), z), image);
});

test('a part listed with two lengths: the template is refused, naming it (the local copy was blamed)', async () => {
  const z = Buffer.from('ZZ');
  const sum = createHash('md5').update(z).digest();
  const image = Buffer.from('ZZZ');
  const made = await tinyRegions('two-lengths', template([], [E.t6(2, sum), E.t6(1, sum), E.t5(3, createHash('md5').update(image).digest())]), z);
  const r = await cli(['make-image', made.jigdo, '-o', path.join(made.dir, 'out.iso'), ...made.local]);
  assertCleanFailure(r, path.join(made.dir, 'two-lengths.template'), new RegExp(`part ${sum.toString('base64url')} is listed with two lengths, 2 and 1 bytes: a corrupt template$`));
});

test('65,536 raw regions of a byte, each followed by a 1-byte part: every region a job of its own, in seconds', async () => {
  // (Raw regions in a row are one read since they were merged: this is the case that still makes a job per region.)
  const n = 65_536;
  const z = Buffer.from('Z');
  const sum = createHash('md5').update(z).digest();
  const raw = Buffer.from(Array.from({ length: n }, (_, i) => (i * 5) & 255));
  const image = Buffer.alloc(2 * n);
  for (let i = 0; i < n; i++) image.set([raw[i]!, 0x5a], 2 * i);
  const entries = [...Array.from({ length: n }, () => [E.t2(1), E.t6(1, sum)]).flat(), E.t5(2 * n, createHash('md5').update(image).digest())];
  await buildsQuickly(await tinyRegions('raw-and-part', template([data(raw)], entries), z), image);
});

test("info of a template with no DATA part: 'Raw data: none', not '0 bytes in 0 no chunk(s)'", async () => {
  const z = Buffer.from('ZZ');
  const sum = createHash('md5').update(z).digest();
  const made = await tinyRegions('all-parts', template([], [E.t6(2, sum), E.t5(2, createHash('md5').update(z).digest())]), z);
  const r = await cli(['info', made.jigdo]);
  assertOk(r);
  assert.match(r.stdout, /^Raw data: {5}none \(every byte of the image is in a part\)$/m);
});
