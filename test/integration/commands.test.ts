// The CLI commands on every sample, through bin/jigdofs (dist/ must be built): make-image, verify,
// info --json and missing, checked against image.iso, published MD5s, the golden `jigdo-file ls` and
// print-missing outputs, and (when installed) jigdo-file itself.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { BIN, SAMPLES, SAMPLE_PARTS, assertCleanFailure, assertOk, describeRun, runCli, type CliResult } from '../helpers/cli.js';
import { giveTo, testUser } from '../helpers/test-user.js';
import { buildFixtures, type FixtureSet } from '../helpers/fixtures.js';
import { fileMd5 } from '../helpers/hash.js';
import { grouped } from '../../src/util/grouped.js';

const execFileP = promisify(execFile);
const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-commands-'));
after(() => rmSync(work, { recursive: true, force: true }));
const cache = path.join(work, 'cache');
/** Every run is hermetic: a cache folder of its own, no network (the samples name http://127.0.0.1:8765/ mirrors). */
let runs = 0;
const cli = (args: string[]) => runCli([...args, '--cache-dir', path.join(cache, String(++runs)), '--offline']);

const IMAGE_MD5 = '784af77770a40eb11678baaea6484bff';
const MULTIPART_MD5 = '018ef75150c7a32a70c67a8dcc885924';
const sample = (name: string): string => path.join(SAMPLES, name);

interface Sample {
  jigdo: string;
  template: string;
  golden: string;
  md5: string;
}
const SAMPLES_ALL: Sample[] = [
  { jigdo: 'jf-md5-gzip.jigdo', template: 'jf-md5-gzip.template', golden: 'golden-ls-jf-md5-gzip.txt', md5: IMAGE_MD5 },
  { jigdo: 'jf-sha256-bzip2.jigdo', template: 'jf-sha256-bzip2.template', golden: 'golden-ls-jf-sha256-bzip2.txt', md5: IMAGE_MD5 },
  { jigdo: 'jte-md5-gzip.jigdo', template: 'jte-md5-gzip.template', golden: 'golden-ls-jte-md5-gzip.txt', md5: IMAGE_MD5 },
  { jigdo: 'jte-sha256-bzip2.jigdo', template: 'jte-sha256-bzip2.template', golden: 'golden-ls-jte-sha256-bzip2.txt', md5: IMAGE_MD5 },
  { jigdo: 'jte-multipart.jigdo', template: 'jte-multipart.template', golden: 'golden-ls-jte-multipart.txt', md5: MULTIPART_MD5 },
  { jigdo: 'quoting.jigdo', template: 'jf-md5-gzip.template', golden: 'golden-ls-jf-md5-gzip.txt', md5: IMAGE_MD5 },
  { jigdo: 'jf-md5-gzip.gz.jigdo', template: 'jf-md5-gzip.template', golden: 'golden-ls-jf-md5-gzip.txt', md5: IMAGE_MD5 },
];

/** What `jigdo-file ls` said about a template (golden file). */
function golden(file: string) {
  const rows = readFileSync(sample(file), 'utf8').trim().split('\n').map((l) => l.trim().split(/\s+/));
  const need = rows.filter((r) => r[0]!.startsWith('need-file'));
  const raw = rows.filter((r) => r[0] === 'in-template');
  const info = rows.find((r) => r[0]!.startsWith('image-info'))!;
  return {
    size: Number(info[1]),
    blockLength: Number(info[2]),
    kind: info[0]!.endsWith('sha256') ? 'sha256' : 'md5',
    hex: Buffer.from(info[3]!, 'base64url').toString('hex'),
    distinct: new Set(need.map((r) => r[3])).size,
    distinctNonEmpty: new Set(need.filter((r) => r[2] !== '0').map((r) => r[3])).size,
    distinctNonEmptyBytes: [...new Map(need.map((r) => [r[3], Number(r[2])])).values()].reduce((n, b) => n + b, 0),
    placed: need.filter((r) => r[2] !== '0').length,
    zeroLength: new Set(need.filter((r) => r[2] === '0').map((r) => r[3])).size,
    partBytes: need.reduce((n, r) => n + Number(r[2]), 0),
    rawBytes: raw.reduce((n, r) => n + Number(r[2]), 0),
    regions: [...raw, ...need.filter((r) => r[2] !== '0')].map((r) => ({ offset: Number(r[1]), length: Number(r[2]), kind: r[0] === 'in-template' ? 'raw' : 'part' })),
  };
}

/** Files in a folder, to prove no temporary file is left behind. */
const listing = async (dir: string): Promise<string[]> => (await readdir(dir)).sort();

test('make-image writes every sample with the right MD5, and nothing else', { concurrency: 4 }, async (t) => {
  await Promise.all(SAMPLES_ALL.map((s) => t.test(s.jigdo, async () => {
    const dir = path.join(work, `make-${s.jigdo}`);
    await mkdir(dir);
    const out = path.join(dir, 'out.iso');
    const r = await cli(['make-image', sample(s.jigdo), '--scan', SAMPLE_PARTS, '-o', out]);
    assertOk(r);
    assert.equal(await fileMd5(out), s.md5);
    assert.deepEqual(await listing(dir), ['out.iso']);
    assert.equal(r.stdout, '');
  })));
});

test('verify: exit 0 on the right image for every sample', { concurrency: 4 }, async (t) => {
  // quoting.jigdo and the gzipped .jigdo name jf-md5-gzip.template: their make-image run covers them.
  await Promise.all(SAMPLES_ALL.filter((s) => !/quoting|\.gz\./.test(s.jigdo)).map((s) => t.test(s.jigdo, async () => {
    const image = s.md5 === IMAGE_MD5 ? sample('image.iso') : path.join(work, `make-${s.jigdo}`, 'out.iso');
    const r = await cli(['verify', sample(s.jigdo), image]);
    assertOk(r);
    assert.match(r.stdout, /^OK: /, s.jigdo);
  })));
});

test('verify: a copy with flipped bytes fails (exit 1) and names the wrong regions', async () => {
  const g = golden('golden-ls-jf-md5-gzip.txt');
  const bad = Buffer.from(readFileSync(sample('image.iso')));
  // One byte in the first raw region, one in a.bin (67584+), one in c.bin (157696+), one in the last raw region.
  for (const at of [100, 67584 + 2500, 157696 + 69999, 536575]) bad[at]! ^= 0x40;
  const file = path.join(work, 'flipped.iso');
  await writeFile(file, bad);
  const jigdos = ['jf-md5-gzip.jigdo', 'jf-sha256-bzip2.jigdo', 'jte-md5-gzip.jigdo', 'jte-sha256-bzip2.jigdo'];
  const runs = await Promise.all(jigdos.map((jigdo) => cli(['verify', sample(jigdo), file])));
  for (const [i, jigdo] of jigdos.entries()) {
    const r = runs[i]!;
    assert.equal(r.code, 1, describeRun(r));
    assert.match(r.stdout, /FAILED/);
    const named = [...r.stdout.matchAll(/bytes (\d+)\.\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    const wrong = g.regions
      .filter((reg) => [100, 67584 + 2500, 157696 + 69999, 536575].some((at) => at >= reg.offset && at < reg.offset + reg.length))
      .map((reg) => [reg.offset, reg.offset + reg.length - 1]);
    assert.equal(wrong.length, 4);
    assert.deepEqual(named.sort((a, b) => a[0]! - b[0]!), wrong.sort((a, b) => a[0]! - b[0]!), `${jigdo}:\n${r.stdout}`);
    // Part regions name the part's checksum.
    assert.match(r.stdout, jigdo.includes('sha256') ? /igUsmECgerF32Kp4ht2iW_6vztOhBYmPhzePNaZfYk8/ : /P6D_Q1IkDFd5tl9ZIOws9A/);
  }
  // --json says the same.
  const j = await cli(['verify', sample('jf-md5-gzip.jigdo'), file, '--json']);
  assert.equal(j.code, 1, describeRun(j));
  const report = JSON.parse(j.stdout) as { ok: boolean; expected: string; badRegions: Array<{ offset: number }> };
  assert.equal(report.ok, false);
  assert.equal(report.expected, IMAGE_MD5);
  assert.deepEqual(report.badRegions.map((b) => b.offset), [0, 67584, 157696, 227696]);
});

test('verify: past 20 wrong regions, the others are counted, and where the file is too short is still said', async () => {
  // Found by a probe: the list stopped at 20 without a word, the short end with it.
  const dir = path.join(work, 'many-wrong');
  await mkdir(dir, { recursive: true });
  const files: Buffer[] = [];
  for (let i = 0; i < 30; i++) files.push(Buffer.from(Array.from({ length: 2000 }, (_, j) => (i * 7919 + j * 31 + ((j * j) >> 3)) & 0xff)));
  await mkdir(path.join(dir, 'tree'));
  for (const [i, f] of files.entries()) await writeFile(path.join(dir, 'tree', `f${i}.bin`), f);
  const image = Buffer.concat(files.flatMap((f, i) => [Buffer.alloc(100, 0x5a + i), f]));
  await writeFile(path.join(dir, 'img.raw'), image);
  assertOk(await runCli(['make-template', 'img.raw', 'tree//', '-j', 'img.jigdo', '-t', 'img.template', '--cache-dir', path.join(dir, 'cache')], { cwd: dir }));
  await writeFile(path.join(dir, 'zeros.iso'), Buffer.alloc(image.length - 5000)); // every region wrong, the end missing
  const r = await cli(['verify', path.join(dir, 'img.jigdo'), path.join(dir, 'zeros.iso')]);
  assert.equal(r.code, 1, describeRun(r));
  const listed = r.stdout.split('\n').filter((l) => /^  bytes /.test(l));
  assert.equal(listed.length, 21, describeRun(r));
  assert.match(listed[20]!, new RegExp(`^  bytes ${image.length - 5000}\\.\\.${image.length - 1} \\(5000\\): missing \\(file too short\\)$`));
  const count = /^  (\d+) regions are wrong; the first 20 are listed$/m.exec(r.stdout);
  assert.ok(count && Number(count[1]) > 20, r.stdout);
  const j = await cli(['verify', path.join(dir, 'img.jigdo'), path.join(dir, 'zeros.iso'), '--json']);
  const report = JSON.parse(j.stdout) as { badRegions: unknown[]; moreBadRegions: number };
  assert.equal(report.badRegions.length, 21);
  assert.equal(20 + report.moreBadRegions, Number(count[1]));
});

test('verify: a truncated or extended image fails and says so', async () => {
  const image = readFileSync(sample('image.iso'));
  const short = path.join(work, 'short.iso');
  const long = path.join(work, 'long.iso');
  await writeFile(short, image.subarray(0, image.length - 4096));
  await writeFile(long, Buffer.concat([image, Buffer.from([0])]));
  const [a, b] = await Promise.all([cli(['verify', sample('jf-md5-gzip.jigdo'), short]), cli(['verify', sample('jf-md5-gzip.jigdo'), long])]);
  assert.equal(a.code, 1, describeRun(a));
  assert.match(a.stdout, /size 532480, expected 536576/);
  assert.equal(b.code, 1, describeRun(b));
  assert.match(b.stdout, /size 536577, expected 536576/);
});

test('verify reads to the end whatever stat says: a pipe, a block device (its first bytes), a name that is not UTF-8', async () => {
  const image = readFileSync(sample('image.iso'));
  // A FIFO (stat says 0 bytes): the image, then the image and more (read one byte past the image: not a size).
  for (const [bytes, code] of [[image, 0], [Buffer.concat([image, Buffer.alloc(4096)]), 1]] as const) {
    const fifo = path.join(work, `verify-${++runs}.fifo`);
    await execFileP('mkfifo', [fifo]);
    const [r] = await Promise.all([cli(['verify', sample('jf-md5-gzip.jigdo'), fifo]), writeFile(fifo, bytes).catch(() => undefined)]);
    assert.equal(r.code, code, describeRun(r));
    if (code === 1) assert.equal(r.stdout, `FAILED: ${fifo}: more than the image's 536576 bytes (not a file: read no further than one byte past the image)\n`);
  }
  // A loop device bigger than the image (a USB stick written with dd): the image's bytes at its start are checked.
  const disk = path.join(work, 'stick.img');
  await writeFile(disk, Buffer.concat([image, Buffer.alloc(1 << 20, 0x55)]));
  const dev = (await execFileP('losetup', ['-f', '--show', disk])).stdout.trim();
  try {
    const r = await cli(['verify', sample('jf-md5-gzip.jigdo'), dev]);
    assertOk(r);
    assert.match(r.stdout, new RegExp(`^OK: ${dev}: checksum matches, image is good \\(${IMAGE_MD5}\\); the device's first 536576 bytes`));
  } finally {
    await execFileP('losetup', ['-d', dev]);
  }
  // A name in Latin-1, as make-image writes it.
  await writeFile(Buffer.from(path.join(work, 'caf\xe9.iso'), 'latin1'), image);
  const named = await execFileP('bash', ['-c', `node ${BIN} verify ${sample('jf-md5-gzip.jigdo')} $'caf\\xe9.iso' --offline --cache-dir c`], { cwd: work });
  assert.match(named.stdout, /^OK: /);
});

test('a hash index that cannot be saved is said (a full disk, a folder in its place), and the image is still made', async () => {
  // Found by a probe: make-image onto a 200 KiB cache disk saved no index, exited 0 and said nothing.
  const dir = path.join(work, 'index-unsaved');
  const cacheDir = path.join(dir, 'cache');
  await mkdir(path.join(cacheDir, 'hash-index.jsonl'), { recursive: true }); // (the save's rename cannot replace a folder)
  const out = path.join(dir, 'out.iso');
  const r = await runCli(['make-image', sample('jf-md5-gzip.jigdo'), '--scan', SAMPLE_PARTS, '-o', out, '--cache-dir', cacheDir, '--offline']);
  assertOk(r);
  assert.equal(await fileMd5(out), IMAGE_MD5);
  assert.match(r.stderr, /cannot save the hash index .*hash-index\.jsonl: .*(EISDIR|directory)/i);
});

test('make-image never replaces a device, a pipe or its own input; an existing image only with --force', async () => {
  const dir = path.join(work, 'outputs');
  await mkdir(dir);
  const jigdo = path.join(dir, 'x.jigdo');
  const template = path.join(dir, 'x.template');
  await writeFile(jigdo, (await readFile(sample('jf-md5-gzip.jigdo'), 'utf8')).replace(/^Template=.*$/m, 'Template=x.template'));
  await copyFile(sample('jf-md5-gzip.template'), template);
  const make = (output: string, ...more: string[]) => cli(['make-image', jigdo, '--scan', SAMPLE_PARTS, '-o', output, ...more]);
  const old = path.join(dir, 'old.iso');
  await writeFile(old, 'an image of last week');
  assertCleanFailure(await make(old), old, /exists already: not written \(remove it, or use --force to replace it\)/);
  assert.equal(await readFile(old, 'utf8'), 'an image of last week');
  assertOk(await make(old, '--force'));
  assert.equal(await fileMd5(old), IMAGE_MD5);
  for (const [input, what] of [[template, 'template'], [jigdo, '.jigdo']] as const) {
    const before = await fileMd5(input);
    assertCleanFailure(await make(input, '--force'), input, new RegExp(`is the ${what.replace('.', '\\.')} this image is made from`));
    assert.equal(await fileMd5(input), before);
  }
  const fifo = path.join(dir, 'fifo');
  const devnull = path.join(dir, 'null'); // a copy of /dev/null's node: a failing test must not touch the real one
  await execFileP('mkfifo', [fifo]);
  await execFileP('mknod', [devnull, 'c', '1', '3']);
  for (const special of [fifo, devnull]) {
    assertCleanFailure(await make(special, '--force'), special, /is not a regular file \(a device, a pipe or a socket\): not written/);
  }
  assert.equal((await execFileP('stat', ['-c', '%F', devnull])).stdout.trim(), 'character special file');
});

test('--scan and --scan-deep of a character device or a pipe say it is not read, instead of passing it over', async () => {
  const fifo = path.join(work, 'scan.fifo');
  await execFileP('mkfifo', [fifo]);
  const specials = [fifo];
  if (process.getuid?.() === 0) {
    specials.push(path.join(work, 'scan.null')); // a copy of /dev/null's node (mknod: root)
    await execFileP('mknod', [specials[1]!, 'c', '1', '3']);
  }
  for (const special of specials) {
    const r = await cli(['missing', sample('jf-md5-gzip.jigdo'), '--scan', special, '--scan-deep', special]);
    for (const opt of ['scan', 'scan-deep']) {
      const line = `${opt}: ${special}: not a regular file, folder or block device (a character device or a pipe): not scanned`;
      assert.ok(r.stderr.includes(line), `${opt}:\n${describeRun(r)}`);
    }
    assert.doesNotMatch(r.stderr, /copy a disc to a file first/);
  }
});

test('info --json agrees with jigdo-file ls (golden files) for every sample', { concurrency: 4 }, async (t) => {
  await Promise.all(SAMPLES_ALL.map((s) => t.test(`${s.jigdo} (${s.golden})`, async () => {
    const r = await cli(['info', sample(s.jigdo), '--json']);
    assertOk(r);
    const info = JSON.parse(r.stdout);
    const g = golden(s.golden);
    assert.equal(info.size, g.size);
    assert.deepEqual(info.checksum, { kind: g.kind, hex: g.hex });
    assert.equal(info.parts.distinct, g.distinct);
    assert.equal(info.parts.placed, g.placed);
    assert.equal(info.parts.zeroLength, g.zeroLength);
    assert.equal(info.parts.bytes, g.partBytes);
    assert.equal(info.rawBytes, g.rawBytes);
    assert.equal(info.template.blockLength, g.blockLength);
    assert.equal(info.template.size, readFileSync(sample(s.template)).length);
    assert.equal(info.template.file, sample(s.template));
    assert.deepEqual(info.template.compression, [s.template.includes('bzip2') ? 'bzip2' : 'zlib']);
    if (s.jigdo === 'jte-multipart.jigdo') assert.equal(info.template.chunks, 3);
    if (s.jigdo === 'quoting.jigdo') assert.equal(info.filename, 'image with space.iso');
  })));
});

test('info (text) shows the size and checksum', async () => {
  const r = await cli(['info', sample('jf-md5-gzip.jigdo')]);
  assertOk(r);
  assert.match(r.stdout, /536,576 bytes/);
  assert.match(r.stdout, new RegExp(`md5 ${IMAGE_MD5}`));
});

test('--image takes the name info shows (jte1.iso for Filename=stdio:jte1.iso) as well as the Filename; a wrong one lists both', async () => {
  const jigdo = sample('jte-md5-gzip.jigdo');
  const shown = await cli(['info', jigdo]);
  assertOk(shown);
  assert.match(shown.stdout, /^Image: +jte1\.iso \(Filename=stdio:jte1\.iso\)/m);
  for (const name of ['jte1.iso', 'stdio:jte1.iso']) {
    const r = await cli(['info', jigdo, '--image', name]);
    assertOk(r);
    assert.equal(r.stdout, shown.stdout, name);
  }
  const out = path.join(cache, 'jte1-by-name.iso');
  assertOk(await cli(['make-image', jigdo, '--image', 'jte1.iso', '--scan', SAMPLE_PARTS, '-o', out]));
  assert.equal(await fileMd5(out), IMAGE_MD5);
  const wrong = await cli(['info', jigdo, '--image', 'jte2.iso']);
  assert.equal(wrong.code, 2, describeRun(wrong));
  assert.match(wrong.stderr, /has no image named "jte2\.iso" \(it has: jte1\.iso \(Filename=stdio:jte1\.iso\)\)/);
});

test('info from the .jigdo alone: the template not there (yet), or remote while --offline: exit 0, "not available (reason)"', async () => {
  // A lone .jigdo: its template (Template=jf-md5-gzip.template) is not beside it.
  const lone = path.join(work, 'lone');
  await mkdir(lone, { recursive: true });
  await copyFile(sample('jf-md5-gzip.jigdo'), path.join(lone, 'x.jigdo'));
  const text = await cli(['info', path.join(lone, 'x.jigdo')]);
  assertOk(text);
  assert.match(text.stdout, /^Image: {8}image\.iso/m);
  assert.match(text.stdout, /^Template: {5}not available \(.*template not found/m);
  assert.match(text.stdout, /^Parts: {8}\d+ distinct in \[Parts\]/m);
  assert.match(text.stdout, /^Servers:/m);
  const json = await cli(['info', path.join(lone, 'x.jigdo'), '--json']);
  assertOk(json);
  const info = JSON.parse(json.stdout) as { template: { available: boolean; reason: string }; jigdo: { partKeys: number; templateMd5?: string } };
  assert.equal(info.template.available, false);
  assert.match(info.template.reason, /template not found/);
  assert.ok(info.jigdo.partKeys > 0);
  assert.match(info.jigdo.templateMd5 ?? '', /^[0-9a-f]{32}$/);
  // A remote template with --offline (the cli helper adds it) and nothing in the cache.
  const remote = (await readFile(sample('jf-md5-gzip.jigdo'), 'utf8')).replace(/^Template=.*$/m, 'Template=http://127.0.0.1:9/x.template');
  await writeFile(path.join(lone, 'remote.jigdo'), remote);
  const offline = await cli(['info', path.join(lone, 'remote.jigdo')]);
  assertOk(offline);
  assert.match(offline.stdout, /^Template: {5}not available \(.*--offline/m);
  // A template the user named that is not there stays an error (exit 1).
  // Said as the user's (the code before: "named by …x.jigdo", a file that names another).
  assertCleanFailure(await cli(['info', path.join(lone, 'x.jigdo'), '--template', path.join(lone, 'nowhere.template')]), 'nowhere.template', /: template not found \(given by --template\)$/);
});

/** jigdo-file print-missing(-all) for a sample, from a folder without the image. */
async function jigdoFileMissing(s: Sample, all: boolean): Promise<string> {
  const { stdout } = await execFileP(
    'jigdo-file',
    [all ? 'print-missing-all' : 'print-missing', `--image=${path.join(work, 'no-such-image.iso')}`, `--jigdo=${sample(s.jigdo)}`, `--template=${sample(s.template)}`],
    { cwd: SAMPLES },
  );
  return stdout;
}

/** Blocks of print-missing-all output, without those of the given (zero-length) parts. */
const blocksWithout = (text: string, keys: string[]): string =>
  text
    .split('\n\n')
    .filter((b) => b && !keys.some((k) => b.includes(k)))
    .map((b) => `${b}\n\n`)
    .join('');

test('missing with no sources lists every part and exits 0, like jigdo-file print-missing-all', { concurrency: 4 }, async (t) => {
  await Promise.all(SAMPLES_ALL.map((s, n) => t.test(s.jigdo, async () => {
    const r = await cli(['missing', sample(s.jigdo)]);
    assertOk(r);
    const g = golden(s.golden);
    const blocks = r.stdout.split('\n\n').filter((b) => b !== '');
    assert.equal(blocks.length, g.distinctNonEmpty, r.stdout);
    const bytes = grouped(g.distinctNonEmptyBytes);
    assert.match(r.stderr, new RegExp(`(^|\\n)jigdofs: ${g.distinctNonEmpty} of ${g.distinctNonEmpty} parts missing, ${bytes} of ${bytes} bytes\\n$`));
    // jigdo-file (plain .jigdo only: it does not gunzip) prints the same, except for zero-length parts,
    // which it can never find and we never need (spec §7).
    if (!s.jigdo.includes('.gz.')) {
      const zero = s.jigdo.startsWith('jte-md5-gzip') ? ['1B2M2Y8AsgTpgAmY7PhCfg'] : [];
      assert.equal(r.stdout, blocksWithout(await jigdoFileMissing(s, true), zero));
      if (s.jigdo.startsWith('jf-') || s.jigdo === 'jte-multipart.jigdo') {
        const first = await cli(['missing', '--first', sample(s.jigdo)]);
        assertOk(first);
        assert.equal(first.stdout, await jigdoFileMissing(s, false));
      }
    }
    if (n === 0) {
      const json = await cli(['missing', '--json', sample(s.jigdo)]);
      assertOk(json);
      const parsed = JSON.parse(json.stdout) as { missing: number; total: number; missingBytes: number; totalBytes: number };
      assert.deepEqual([parsed.missing, parsed.total], [g.distinctNonEmpty, g.distinctNonEmpty]);
      assert.deepEqual([parsed.missingBytes, parsed.totalBytes], [g.distinctNonEmptyBytes, g.distinctNonEmptyBytes]);
    }
  })));
});

test('missing on quoting.jigdo prints exactly golden-quoting-print-missing-all.txt, and --first golden-quoting-print-missing.txt', async () => {
  const [all, first] = await Promise.all([cli(['missing', sample('quoting.jigdo')]), cli(['missing', '--first', sample('quoting.jigdo')])]);
  assertOk(all);
  assert.equal(all.stdout, readFileSync(sample('golden-quoting-print-missing-all.txt'), 'utf8'));
  assertOk(first);
  assert.equal(first.stdout, readFileSync(sample('golden-quoting-print-missing.txt'), 'utf8'));
  // --json --first: the same first candidates (found by a probe: the JSON listed them all).
  const [jsonAll, jsonFirst] = await Promise.all([cli(['missing', '--json', sample('quoting.jigdo')]), cli(['missing', '--json', '--first', sample('quoting.jigdo')])]);
  type Listing = { parts: Array<{ candidates: string[] }> };
  const firsts = (JSON.parse(jsonFirst.stdout) as Listing).parts.map((p) => p.candidates);
  assert.ok((JSON.parse(jsonAll.stdout) as Listing).parts.some((p) => p.candidates.length > 1), 'a part with several candidates');
  assert.deepEqual(firsts.map((c) => c.length), firsts.map(() => 1));
  assert.equal(`${firsts.map((c) => c[0]).join('\n')}\n`, readFileSync(sample('golden-quoting-print-missing.txt'), 'utf8'));
});

test('a CRLF copy of quoting.jigdo gives the same missing output and builds the image', async () => {
  const dir = path.join(work, 'crlf');
  await mkdir(dir);
  await writeFile(path.join(dir, 'quoting.jigdo'), (await readFile(sample('quoting.jigdo'), 'utf8')).replace(/\n/g, '\r\n'));
  await copyFile(sample('jf-md5-gzip.template'), path.join(dir, 'jf-md5-gzip.template'));
  const all = await cli(['missing', path.join(dir, 'quoting.jigdo')]);
  assertOk(all);
  assert.equal(all.stdout, readFileSync(sample('golden-quoting-print-missing-all.txt'), 'utf8'));
  const out = path.join(dir, 'out.iso');
  const mk = await cli(['make-image', path.join(dir, 'quoting.jigdo'), '--scan', SAMPLE_PARTS, '-o', out]);
  assertOk(mk);
  assert.equal(await fileMd5(out), IMAGE_MD5);
});

test('missing with sources lists only what is still missing', async () => {
  const none = await cli(['missing', sample('jf-md5-gzip.jigdo'), '--scan', SAMPLE_PARTS]);
  assertOk(none);
  assert.equal(none.stdout, '');
  assert.match(none.stderr, /0 of 3 parts missing/);
  const dir = path.join(work, 'only-a');
  await mkdir(dir);
  await copyFile(path.join(SAMPLE_PARTS, 'a.bin'), path.join(dir, 'a.bin'));
  const some = await cli(['missing', sample('jf-md5-gzip.jigdo'), '--scan', dir]);
  assertOk(some);
  assert.equal(
    some.stdout,
    'http://127.0.0.1:8765/parts/sub/b-copy.bin\nMD5Sum:QiYNQ8Ib2_eZJAaaz5Uwtg\n\nhttp://127.0.0.1:8765/parts/sub/c.bin\nMD5Sum:T_xAhGd5OOFDZW1sYi26Eg\n\n',
  );
  const sizeOf = (name: string): number => statSync(path.join(SAMPLE_PARTS, name)).size;
  const all = sizeOf('a.bin') + sizeOf('sub/b-copy.bin') + sizeOf('sub/c.bin');
  assert.ok(some.stderr.endsWith(`2 of 3 parts missing, ${grouped(all - sizeOf('a.bin'))} of ${grouped(all)} bytes\n`), some.stderr);
});

test("an interrupted jigdo-lite's IMG.tmp beside the image: missing and make-image take its parts, as jigdo-file does (oracle: print-missing)", async () => {
  const dir = path.join(work, 'jigdo-lite-left');
  await mkdir(path.join(dir, 'p', 'sub'), { recursive: true });
  for (const f of ['jf-md5-gzip.jigdo', 'jf-md5-gzip.template']) await copyFile(sample(f), path.join(dir, f));
  // The parts of sub/ only: a.bin is in the .tmp (written by jigdo-file make-image, jigdo-lite's tool).
  for (const f of ['b-copy.bin', 'c.bin']) await copyFile(path.join(SAMPLE_PARTS, 'sub', f), path.join(dir, 'p', 'sub', f));
  const tmp = path.join(dir, 'image.iso.tmp');
  await writeFile(tmp, gunzipSync(await readFile(sample('image.iso.tmp.gz'))));
  const run = (args: string[]) => runCli([...args, '--offline', '--cache-dir', path.join(dir, `cache-${++runs}`)], { cwd: dir });
  const oracle = await execFileP('jigdo-file', ['print-missing', '--no-cache', '-i', 'image.iso', '-j', 'jf-md5-gzip.jigdo', '-t', 'jf-md5-gzip.template'], { cwd: dir });
  assert.doesNotMatch(oracle.stdout, /a\.bin/);
  const missing = await run(['missing', 'jf-md5-gzip.jigdo', '--first']);
  assertOk(missing);
  assert.equal(missing.stdout, oracle.stdout);
  const made = await run(['make-image', 'jf-md5-gzip.jigdo', '--local', 'Parts=p']);
  assertOk(made);
  assert.equal(await fileMd5(path.join(dir, 'image.iso')), IMAGE_MD5);
  assert.match(made.stderr, /parts were taken from .*image\.iso\.tmp, jigdo-lite's unfinished image: it is no longer needed/);
  // A region the .tmp says holds a part but does not is named in the reason (it was dropped without a word).
  const bytes = gunzipSync(await readFile(sample('image.iso.tmp.gz')));
  const at = bytes.indexOf(await readFile(path.join(SAMPLE_PARTS, 'a.bin')));
  assert.ok(at > 0);
  bytes[at + 10]! ^= 0xff;
  await writeFile(tmp, bytes);
  const damaged = await run(['make-image', 'jf-md5-gzip.jigdo', '--local', 'Parts=p', '-o', 'image.iso', '--force']);
  assert.equal(damaged.code, 1, describeRun(damaged));
  assert.match(damaged.stderr, /P6D_Q1IkDFd5tl9ZIOws9A .*image\.iso\.tmp does not hold this part \(other bytes\)/);
  // The .tmp of another image (here: bytes that are none) is not used, and said so.
  await writeFile(tmp, Buffer.alloc(600_000, 1));
  const other = await run(['make-image', 'jf-md5-gzip.jigdo', '--local', 'Parts=p', '-o', 'image.iso', '--force']);
  assert.equal(other.code, 1, describeRun(other));
  assert.match(other.stderr, /image\.iso\.tmp: not an unfinished image of this template .*: not used/);
  assert.match(other.stderr, /P6D_Q1IkDFd5tl9ZIOws9A/);
});

test('make-image with parts missing: exit 1, names the parts, writes nothing', async () => {
  const dir = path.join(work, 'partial-out');
  const parts = path.join(work, 'partial-parts');
  await mkdir(dir);
  await mkdir(parts);
  await copyFile(path.join(SAMPLE_PARTS, 'a.bin'), path.join(parts, 'a.bin'));
  for (const jigdo of ['jf-md5-gzip.jigdo', 'jte-sha256-bzip2.jigdo']) {
    const out = path.join(dir, 'out.iso');
    const r = await cli(['make-image', sample(jigdo), '--scan', parts, '-o', out]);
    assert.equal(r.code, 1, describeRun(r));
    assert.equal(r.timedOut, false);
    const keys = jigdo.includes('sha256')
      ? ['cNTHs3kcC0JEGa1LPQ6b3p-mRk1maoUmBE2irp5whUo', 'yJsu0b2SLGxUhlf43C9MeRo7BoazmAdn5i-MknaB0s8']
      : ['QiYNQ8Ib2_eZJAaaz5Uwtg', 'T_xAhGd5OOFDZW1sYi26Eg'];
    for (const k of keys) assert.ok(r.stderr.includes(k), `${jigdo}: stderr does not name ${k}:\n${r.stderr}`);
    assert.ok(!r.stderr.includes(jigdo.includes('sha256') ? 'igUsmECgerF32Kp4ht2iW_6vztOhBYmPhzePNaZfYk8' : 'P6D_Q1IkDFd5tl9ZIOws9A'), 'a.bin is not missing');
    assert.match(r.stderr, /2 part\(s\) missing/);
    assert.ok(r.stderr.includes(out), 'names the output');
    assert.doesNotMatch(r.stderr, /TypeError|\n\s+at /);
    assert.deepEqual(await listing(dir), [], 'no image and no temporary file');
  }
});

test('make-image refuses to overwrite a folder, and cleans up after itself', async () => {
  const dir = path.join(work, 'into-dir');
  await mkdir(path.join(dir, 'target'), { recursive: true });
  const r = await cli(['make-image', sample('jf-md5-gzip.jigdo'), '--scan', SAMPLE_PARTS, '-o', path.join(dir, 'target')]);
  assertCleanFailure(r, path.join(dir, 'target'));
  assert.deepEqual(await listing(dir), ['target']);
  assert.deepEqual(await listing(path.join(dir, 'target')), []);
  const r2 = await cli(['make-image', sample('jf-md5-gzip.jigdo'), '--scan', SAMPLE_PARTS, '-o', path.join(dir, 'no', 'such', 'dir.iso')]);
  assertCleanFailure(r2, path.join(dir, 'no', 'such', 'dir.iso'));
  assert.deepEqual(await listing(dir), ['target']);
});

test('info, missing, verify, --help and --version to a full disk (/dev/full): one line that standard output cannot be written, exit 1', async () => {
  // Found by a probe: each exited 0 with nothing written (`info --json > full-disk/info.json`).
  const full = openSync('/dev/full', 'w');
  try {
    const jigdo = path.join(SAMPLES, 'jf-md5-gzip.jigdo');
    const runs = [['info', jigdo], ['info', jigdo, '--json'], ['missing', jigdo], ['verify', jigdo, path.join(SAMPLES, 'image.iso')], ['--help'], ['--version'], ['info', '--help']];
    for (const args of runs) {
      const r = await runCli(args[0]!.startsWith('-') ? args : [...args, '--offline'], { stdoutFd: full });
      assert.equal(r.code, 1, `${args.join(' ')}: ${describeRun(r)}`);
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('jigdofs: standard output'));
      assert.deepEqual(lines, ['jigdofs: standard output: cannot write: ENOSPC: no space left on device, write'], `${args.join(' ')}: ${r.stderr}`);
    }
  } finally {
    closeSync(full);
  }
});

test('a part whose only URLs are an invalid http:// one and an ftp:// one: each is named with its own reason', async () => {
  // Found by a probe: `http://127.0.0.1:99999/` was said to be refused as not http:// or https://.
  const dir = path.join(work, 'bad-urls');
  await mkdir(dir, { recursive: true });
  const text = readFileSync(path.join(SAMPLES, 'jf-md5-gzip.jigdo'), 'utf8').replace(/^Parts=.*$/m, 'Parts=http://127.0.0.1:99999/\nParts=ftp://x.example/');
  await writeFile(path.join(dir, 'x.jigdo'), text);
  await copyFile(path.join(SAMPLES, 'jf-md5-gzip.template'), path.join(dir, 'jf-md5-gzip.template'));
  const r = await runCli(['make-image', path.join(dir, 'x.jigdo'), '-o', path.join(dir, 'x.iso'), '--cache-dir', path.join(dir, 'cache')]);
  assert.equal(r.code, 1, describeRun(r));
  assert.match(r.stderr, /http:\/\/127\.0\.0\.1:99999\/a\.bin: not a valid URL; ftp:\/\/x\.example\/a\.bin: only http:\/\/ and https:\/\/ URLs are fetched/);
});

test('sources a regular user cannot read are named: a part under a --local tree, the tree itself, a --scan subfolder; a --local file', { skip: process.getuid?.() !== 0 && 'needs root (makes a user)' }, async () => {
  // Found by a probe: each gave only "cache: not in the cache", the EACCES never said.
  const user = testUser();
  const dir = mkdtempSync(path.join(tmpdir(), 'jigdofs-unreadable-'));
  try {
    await copyFile(path.join(SAMPLES, 'jf-md5-gzip.jigdo'), path.join(dir, 'x.jigdo'));
    await copyFile(path.join(SAMPLES, 'jf-md5-gzip.template'), path.join(dir, 'jf-md5-gzip.template'));
    await execFileP('cp', ['-r', SAMPLE_PARTS, path.join(dir, 'parts')]);
    giveTo(user, dir);
    const parts = path.join(dir, 'parts');
    const env = { ...process.env, HOME: user.home, XDG_CACHE_HOME: path.join(user.home, '.cache'), XDG_CONFIG_HOME: path.join(user.home, '.config'), JIGDOFS_DEBUG: '' };
    const make = (...source: string[]): Promise<CliResult> =>
      runCli(['make-image', path.join(dir, 'x.jigdo'), '-o', path.join(dir, 'x.iso'), ...source, '--offline', '--cache-dir', path.join(dir, 'cache')], { user, env });
    chmodSync(path.join(parts, 'sub'), 0);
    const local = await make('--local', `Parts=${parts}`);
    assert.equal(local.code, 1, describeRun(local));
    assert.match(local.stderr, /Parts:sub\/c\.bin: local: \S+\/parts\/sub\/c\.bin cannot be read \(EACCES/);
    const scan = await make('--scan', parts);
    assert.equal(scan.code, 1, describeRun(scan));
    assert.match(scan.stderr, /^jigdofs: scan: cannot read the folder \S+\/parts\/sub: EACCES/m);
    chmodSync(parts, 0);
    const tree = await make('--local', `Parts=${parts}`);
    assert.match(tree.stderr, /^jigdofs: --local Parts=\S+\/parts: cannot be read: permission denied \(entered by this user\)$/m);
    chownSync(parts, 0, 0);
    chmodSync(parts, 0o711); // (others may enter, not list: all a --local tree needs, its parts being looked up by name)
    const entered = await make('--local', `Parts=${parts}`);
    assert.doesNotMatch(entered.stderr, /--local/, describeRun(entered));
    chmodSync(parts, 0o755);
    const file = await make('--local', `Parts=${parts}/a.bin`);
    assert.match(file.stderr, /^jigdofs: --local Parts=\S+\/parts\/a\.bin: not a folder$/m);
  } finally {
    await execFileP('chmod', ['-R', 'u+rwx', dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a --local or --mirror label the .jigdo does not use is said, with the labels it uses (a typo kept a source out without a word)', async () => {
  // Found by a probe.
  const jigdo = sample('jf-md5-gzip.jigdo');
  const r = await cli(['missing', jigdo, '--local', `Prts=${SAMPLE_PARTS}`, '--mirror', 'Deb=http://127.0.0.1:9/']);
  assertOk(r);
  assert.match(r.stderr, new RegExp(`^jigdofs: --local Prts=${SAMPLE_PARTS}: ${jigdo} uses no label Prts \\(its labels: Parts\\): not used$`, 'm'));
  assert.match(r.stderr, /^jigdofs: --mirror Deb=http:\/\/127\.0\.0\.1:9\/: .* uses no label Deb \(its labels: MD5Sum, Parts\): not used$/m);
  const right = await cli(['missing', jigdo, '--local', `Parts=${SAMPLE_PARTS}`, '--mirror', 'MD5Sum=http://127.0.0.1:9/by-md5/']);
  assertOk(right);
  assert.doesNotMatch(right.stderr, /uses no label/, 'MD5Sum: every part has it (a review found it called unused)');
  // A --local label only [Servers] reaches is not used by the local sources (only --mirror follows [Servers]).
  const dir = path.join(work, 'labels-through-servers');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'x.jigdo'), readFileSync(jigdo, 'utf8').replace(/^Parts=.*$/m, 'Parts=Debian:x/\nDebian=http://127.0.0.1:9/'));
  await copyFile(sample('jf-md5-gzip.template'), path.join(dir, 'jf-md5-gzip.template'));
  const chained = await cli(['missing', path.join(dir, 'x.jigdo'), '--local', `Debian=${dir}`, '--mirror', 'Debian=http://127.0.0.1:9/']);
  assertOk(chained);
  assert.match(chained.stderr, /^jigdofs: --local Debian=.*: .* uses no label Debian \(its labels: Parts\): not used$/m);
  assert.doesNotMatch(chained.stderr, /--mirror Debian=.*uses no label/);
});

test('usage errors exit 2, in one line that begins "jigdofs: " as every error does', async () => {
  const cases = [['info'], ['bogus-command'], ['info', sample('jf-md5-gzip.jigdo'), '--memory', 'lots'], ['verify', sample('jf-md5-gzip.jigdo')], ['info', '--jsn', 'x']];
  const results = await Promise.all(cases.map((args) => cli(args)));
  for (const [i, args] of cases.entries()) {
    const r = results[i]!;
    assert.equal(r.code, 2, `${args.join(' ')}: ${describeRun(r)}`);
    assert.match(r.stderr, /^jigdofs: [^\n]+\n$/, `${args.join(' ')}: ${describeRun(r)}`); // (commander wrote "error: ..." and a hint line)
  }
  assert.equal(results[0]!.stderr, "jigdofs: missing required argument 'jigdo' (see jigdofs info --help)\n");
  assert.equal(results[1]!.stderr, "jigdofs: unknown command 'bogus-command' (see jigdofs --help)\n");
  assert.equal(results[4]!.stderr, "jigdofs: unknown option '--jsn' (Did you mean --json?; see jigdofs info --help)\n");
});

test('generated fixtures (test/helpers/fixtures.ts): make-image on every variant, verify on two', { concurrency: 4 }, async (t) => {
  // The fixtures need xorriso and jigdo-file (scripts/setup.sh installs them): failing to build them fails the test.
  const set: FixtureSet = await buildFixtures();
  await Promise.all(
    Object.values(set.variants).map((v) =>
      t.test(v.name, async () => {
        const out = path.join(work, `fixture-${v.name}.iso`);
        const mk = await cli(['make-image', v.jigdo, '--scan', v.partsDir, '-o', out]);
        assertOk(mk);
        assert.equal(await fileMd5(out), v.imageMd5, v.name);
        rmSync(out);
        if (v.name === 'jf-sha256-bzip2' || v.name === 'jte-md5-gzip') {
          const ver = await cli(['verify', v.jigdo, v.image, '--json']);
          assertOk(ver);
          const report = JSON.parse(ver.stdout) as { ok: boolean; size: number; expected: string };
          assert.equal(report.ok, true);
          assert.equal(report.size, v.imageSize);
          assert.equal(report.expected, v.checksum === 'md5' ? v.imageMd5 : v.imageSha256);
        }
      }),
    ),
  );
});

test("what a killed run left in the cache (partial downloads, locks) goes with the next run, also one that fetches nothing", async () => {
  const { ownerTag } = await import('../../src/util/pid.js');
  const { spawnSync } = await import('node:child_process');
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  const dir = path.join(cache, `killed-${++runs}`);
  const tmp = path.join(dir, 'parts', 'tmp');
  const locks = path.join(dir, 'parts', 'locks');
  await mkdir(tmp, { recursive: true });
  await mkdir(locks, { recursive: true });
  await writeFile(path.join(tmp, `${ownerTag(deadPid)}-aa.partial`), 'half a part');
  await writeFile(path.join(locks, 'parts-md5-aa.lock'), `${ownerTag(deadPid)}-1\n`);
  const out = path.join(work, `after-killed-${runs}.iso`);
  const r = await runCli(['make-image', sample('jf-md5-gzip.jigdo'), '-o', out, '--scan', SAMPLE_PARTS, '--cache-dir', dir, '--offline']);
  assertOk(r);
  assert.equal(await fileMd5(out), IMAGE_MD5);
  assert.deepEqual([...(await readdir(tmp)), ...(await readdir(locks))], []);
});

test('without /proc (a container or chroot that has none) the template is still checked, by its name', { skip: process.getuid?.() !== 0 && 'needs root (unshare -m, mount)' }, async () => {
  const out = path.join(work, `no-proc-${++runs}.iso`);
  const args = ['make-image', sample('jf-md5-gzip.jigdo'), '-o', out, '--scan', SAMPLE_PARTS, '--cache-dir', path.join(cache, String(runs)), '--offline'];
  // A mount namespace of its own, with an empty /proc: nothing outside it sees the change.
  const script = `mount -t tmpfs none /proc && exec "$0" "$@"`;
  const r = await execFileP('unshare', ['-m', 'sh', '-c', script, process.execPath, BIN, ...args]).then(
    (ok) => ({ code: 0, stderr: ok.stderr }),
    (err: { code?: number; stderr?: string }) => ({ code: err.code ?? -1, stderr: err.stderr ?? '' }),
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await fileMd5(out), IMAGE_MD5);
});
