// Bad input never crashes, hangs or writes a wrong image: truncated and bit-flipped templates and
// .jigdo files, wrong template checksums, missing or odd files. In-process through the parsers and the
// engine for every case, and through the CLI (one-line error naming the file, exit 1) for a sample.
// Everything corrupted is a copy in a temporary folder; test/fixtures is never modified.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import path from 'node:path';
import { BufferByteSource } from '../../src/format/bytesource.js';
import { JigdoError, UnavailableError } from '../../src/format/errors.js';
import { parseJigdo } from '../../src/format/jigdo.js';
import { parseTemplate } from '../../src/format/template.js';
import { makeImage } from '../../src/build/make-image.js';
import { loadJigdo, openImage, selectImage } from '../../src/engine/session.js';
import { SAMPLES, SAMPLE_PARTS, assertCleanFailure, describeRun, prng, randInt, runCli, type CliResult } from '../helpers/cli.js';
import { md5hex as md5 } from '../helpers/hash.js';

const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-bad-input-'));
after(() => rmSync(work, { recursive: true, force: true }));
const cache = path.join(work, 'cache');
/** Hermetic runs: no network, and a cache folder of their own (no interference between parallel runs). */
let runs = 0;
const cli = (args: string[]): Promise<CliResult> => runCli([...args, '--cache-dir', path.join(work, `cache-${++runs}`), '--offline'], { timeoutMs: 30_000 });

const execFileAsync = promisify(execFile);
const IMAGE_MD5 = '784af77770a40eb11678baaea6484bff';
const sample = (name: string): string => path.join(SAMPLES, name);
const TEMPLATE = readFileSync(sample('jf-md5-gzip.template'));
const JIGDO_TEXT = readFileSync(sample('jf-md5-gzip.jigdo'), 'utf8');

/** Runs `jobs` with at most `n` at a time. */
async function pool<T>(items: T[], n: number, job: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        await job(items[i]!, i);
      }
    }),
  );
}

/** A copy of jf-md5-gzip.jigdo without Template-MD5Sum, so a corrupt template reaches the parser. */
async function jigdoWithoutSum(dir: string, kind: 'md5' | 'sha256' = 'md5'): Promise<string> {
  const name = kind === 'md5' ? 'jf-md5-gzip.jigdo' : 'jf-sha256-bzip2.jigdo';
  const text = readFileSync(sample(name), 'utf8').replace(/^Template-(MD5|SHA256)Sum=.*\n/m, '');
  assert.ok(!/Template-.*Sum/.test(text));
  const file = path.join(dir, `nosum-${name}`);
  await writeFile(file, text);
  return file;
}

const isCrash = (err: unknown): boolean => !(err instanceof JigdoError || err instanceof UnavailableError);

// ---------------------------------------------------------------------------------------------
// Templates

test('every truncation of two small templates is a JigdoError naming the file (in-process)', async () => {
  for (const name of ['jf-md5-gzip.template', 'jte-sha256-bzip2.template']) {
    const bytes = readFileSync(sample(name));
    for (let n = 0; n < bytes.length; n++) {
      const label = `${name}[0:${n}]`;
      await assert.rejects(parseTemplate(new BufferByteSource(label, bytes.subarray(0, n))), (err: unknown) => {
        assert.ok(err instanceof JigdoError, `${label}: ${String(err)}`);
        assert.ok(err.message.startsWith(`${label}: `), err.message);
        return true;
      });
    }
  }
});

test('truncated templates through the CLI: one-line error naming the template, exit 1', async () => {
  const dir = path.join(work, 'trunc-cli');
  await mkdir(dir);
  const nosum = await jigdoWithoutSum(dir);
  // Empty, inside the header, at the first part, inside compressed data, at/inside DESC, its last bytes.
  const lengths = [0, 23, 124, 1000, 1873, 1900, 2070, 2075];
  await pool(lengths, 4, async (n, i) => {
    const file = path.join(dir, `t${n}.template`);
    await writeFile(file, TEMPLATE.subarray(0, n));
    const out = path.join(dir, `out${n}.iso`);
    // Without a template checksum in the .jigdo the parser sees the truncated file...
    const r = await cli(['make-image', nosum, '--template', file, '--scan', SAMPLE_PARTS, '-o', out]);
    assertCleanFailure(r, file);
    assert.equal(existsSync(out), false);
    // ...with one, the checksum check refuses it first.
    if (i % 3 === 0) {
      const info = await cli(['info', sample('jf-md5-gzip.jigdo'), '--template', file]);
      assertCleanFailure(info, file, /checksum/i);
    }
  });
  assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.iso') || f.includes('.tmp')), []);
});

/** Outcome of building the image in-process from a corrupt template: never a wrong image. */
async function buildWith(jigdoFile: string, template: string | undefined, out: string): Promise<'error' | 'missing' | 'correct'> {
  let session;
  try {
    const jigdo = await loadJigdo(jigdoFile);
    session = await openImage(jigdo, selectImage(jigdo), {
      local: [],
      scan: [SAMPLE_PARTS],
      cacheDir: cache,
      memory: 32 << 20,
      log: () => {},
      template,
    });
    const r = await makeImage(session, out);
    if (r.missing.length > 0) {
      assert.equal(existsSync(out), false, `${template ?? jigdoFile}: parts missing but ${out} was written`);
      return 'missing';
    }
    assert.equal(md5(await readFile(out)), IMAGE_MD5, `${template ?? jigdoFile}: make-image succeeded with a WRONG image`);
    return 'correct';
  } catch (err) {
    assert.ok(!isCrash(err), `${template ?? jigdoFile}: crashed: ${err instanceof Error ? err.stack : String(err)}`);
    assert.equal(existsSync(out), false, `${template ?? jigdoFile}: failed but ${out} exists`);
    return 'error';
  } finally {
    await session?.close();
  }
}

test('~200 random byte flips in templates: an error, or the right image, never a wrong one (in-process)', async (t) => {
  const dir = path.join(work, 'flips');
  await mkdir(dir);
  const counts: Record<string, number> = {};
  for (const [name, kind] of [['jf-md5-gzip.template', 'md5'], ['jf-sha256-bzip2.template', 'sha256']] as const) {
    const bytes = readFileSync(sample(name));
    const nosum = await jigdoWithoutSum(dir, kind);
    const rand = prng(kind === 'md5' ? 2024 : 4048);
    for (let i = 0; i < 100; i++) {
      const copy = Buffer.from(bytes);
      const at = randInt(rand, copy.length);
      copy[at]! ^= 1 << randInt(rand, 8);
      // A fresh name per flip: nothing may be remembered about an earlier file.
      const file = path.join(dir, `${kind}-${i}-at${at}.template`);
      await writeFile(file, copy);
      const outcome = await buildWith(nosum, file, path.join(dir, `${kind}-${i}.iso`));
      counts[`${kind} ${outcome}`] = (counts[`${kind} ${outcome}`] ?? 0) + 1;
      rmSync(file);
    }
  }
  t.diagnostic(JSON.stringify(counts));
  // Most flips land in compressed data or DESC and must be caught.
  assert.ok((counts['md5 error'] ?? 0) > 50 && (counts['sha256 error'] ?? 0) > 50, JSON.stringify(counts));
  assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.iso') || f.includes('.tmp')).length, (counts['md5 correct'] ?? 0) + (counts['sha256 correct'] ?? 0));
});

test('byte flips through the CLI: exit 1 with a clean error, or exit 0 with the right image', async () => {
  const dir = path.join(work, 'flips-cli');
  await mkdir(dir);
  const nosum = await jigdoWithoutSum(dir);
  const rand = prng(99);
  // Header, zlib header, compressed data, DESC magic, a part's rsync (ignored) and MD5, the image MD5, the trailing length.
  const spots = [5, 140, 900, 1875, 1900, 1910, 2060, 2071, randInt(rand, TEMPLATE.length)];
  const seen = new Set<string>();
  await pool(spots, 4, async (at, i) => {
    const copy = Buffer.from(TEMPLATE);
    copy[at]! ^= 0x10;
    const file = path.join(dir, `flip${i}-at${at}.template`);
    await writeFile(file, copy);
    const out = path.join(dir, `out${i}.iso`);
    const r = await cli(['make-image', nosum, '--template', file, '--scan', SAMPLE_PARTS, '-o', out]);
    assert.equal(r.timedOut, false, describeRun(r));
    if (r.code === 0) {
      assert.equal(md5(await readFile(out)), IMAGE_MD5, `flip at ${at}: exit 0 with a WRONG image`);
      seen.add('correct');
      return;
    }
    assert.equal(existsSync(out), false, `flip at ${at}: failed but wrote ${out}`);
    if (/part\(s\) missing/.test(r.stderr)) {
      // A flipped part checksum: the multi-line report of missing parts.
      assert.match(r.stderr, new RegExp(`^jigdofs: ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not written: \\d+ part\\(s\\) missing:\\n`));
      assert.equal(r.code, 1);
      assert.doesNotMatch(r.stderr, /\n\s+at |TypeError|RangeError/);
      seen.add('missing');
    } else {
      assertCleanFailure(r, /flip\d+-at\d+\.template|out\d+\.iso/);
      seen.add('error');
    }
  });
  // The rsync flip changes nothing jigdofs checks; the part MD5 flip makes that part missing.
  assert.deepEqual([...seen].sort(), ['correct', 'error', 'missing']);
  assert.deepEqual((await readdir(dir)).filter((f) => f.includes('.tmp')), []);
});

test('a template that does not match Template-MD5Sum / Template-SHA256Sum: error mentioning the checksum', async () => {
  const dir = path.join(work, 'wrong-sum');
  await mkdir(dir);
  // Valid jigdo-base64 of the wrong checksum (the empty file's).
  await writeFile(path.join(dir, 'md5.jigdo'), JIGDO_TEXT.replace(/^Template-MD5Sum=.*$/m, 'Template-MD5Sum=1B2M2Y8AsgTpgAmY7PhCfg'));
  await copyFile(sample('jf-md5-gzip.template'), path.join(dir, 'jf-md5-gzip.template'));
  const sha = readFileSync(sample('jf-sha256-bzip2.jigdo'), 'utf8').replace(/^Template-SHA256Sum=.*$/m, 'Template-SHA256Sum=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU');
  await writeFile(path.join(dir, 'sha.jigdo'), sha);
  await copyFile(sample('jf-sha256-bzip2.template'), path.join(dir, 'jf-sha256-bzip2.template'));
  const template = (n: string) => path.join(dir, n);
  const runs = await Promise.all([
    cli(['make-image', path.join(dir, 'md5.jigdo'), '--scan', SAMPLE_PARTS, '-o', path.join(dir, 'a.iso')]),
    cli(['info', path.join(dir, 'md5.jigdo')]),
    cli(['make-image', path.join(dir, 'sha.jigdo'), '--scan', SAMPLE_PARTS, '-o', path.join(dir, 'b.iso')]),
    cli(['verify', path.join(dir, 'sha.jigdo'), sample('image.iso')]),
  ]);
  assertCleanFailure(runs[0]!, template('jf-md5-gzip.template'), /checksum/i);
  assertCleanFailure(runs[1]!, template('jf-md5-gzip.template'), /MD5.*checksum|checksum/i);
  assertCleanFailure(runs[2]!, template('jf-sha256-bzip2.template'), /checksum/i);
  assertCleanFailure(runs[3]!, template('jf-sha256-bzip2.template'), /checksum/i);
  assert.deepEqual((await readdir(dir)).sort(), ['jf-md5-gzip.template', 'jf-sha256-bzip2.template', 'md5.jigdo', 'sha.jigdo']);
});

test('a template that is not there, or is a folder', async () => {
  const dir = path.join(work, 'no-template');
  await mkdir(path.join(dir, 'folder.template'), { recursive: true });
  await writeFile(path.join(dir, 'x.jigdo'), JIGDO_TEXT);
  await writeFile(path.join(dir, 'folder.jigdo'), JIGDO_TEXT.replace('Template=jf-md5-gzip.template', 'Template=folder.template').replace(/^Template-MD5Sum.*\n/m, ''));
  const [a, b, c] = await Promise.all([
    cli(['make-image', path.join(dir, 'x.jigdo'), '--scan', SAMPLE_PARTS, '-o', path.join(dir, 'x.iso')]),
    cli(['info', path.join(dir, 'folder.jigdo')]),
    cli(['info', sample('jf-md5-gzip.jigdo'), '--template', path.join(dir, 'nowhere.template')]),
  ]);
  assertCleanFailure(a!, path.join(dir, 'jf-md5-gzip.template'), /template not found/);
  assertCleanFailure(b!, path.join(dir, 'folder.template'));
  assertCleanFailure(c!, path.join(dir, 'nowhere.template'), /not found/);
});

test('a name with a newline is shown whole in the one line, the newline as \\x0a, with the reason after it', async () => {
  // Found by a probe: the line was cut at the newline, so both the rest of the name and the reason were lost.
  const dir = path.join(work, 'newline-names');
  await mkdir(dir, { recursive: true });
  const [a, b] = await Promise.all([
    cli(['info', path.join(dir, 'no\nsuch.jigdo')]),
    cli(['info', sample('jf-md5-gzip.jigdo'), '--template', path.join(dir, 'bad\nt.template')]),
  ]);
  assertCleanFailure(a!, `${dir}/no\\x0asuch.jigdo`, /: file not found$/);
  assertCleanFailure(b!, `${dir}/bad\\x0at.template`, /not found/);
});

// ---------------------------------------------------------------------------------------------
// .jigdo files

test('every truncation of a .jigdo (plain and gzipped) parses or fails with a JigdoError (in-process)', async () => {
  const dir = path.join(work, 'jigdo-trunc');
  await mkdir(dir);
  const plain = Buffer.from(JIGDO_TEXT);
  const shapes = new Map<string, number>();
  let failed = 0;
  for (let n = 0; n < plain.length; n++) {
    const file = path.join(dir, `t${n}.jigdo`);
    try {
      const j = await parseJigdo(plain.subarray(0, n), { kind: 'file', path: file });
      shapes.set(JSON.stringify({ images: j.images, parts: [...j.parts.keys()] }), n);
    } catch (err) {
      assert.ok(err instanceof JigdoError, `length ${n}: ${String(err)}`);
      assert.ok(err.message.startsWith(file), err.message);
      failed++;
    }
  }
  assert.ok(failed > 100, `${failed} truncations failed`); // everything before [Image] is complete cannot work
  // Each distinct outcome that parsed is run through the whole engine once: error or the right image.
  await copyFile(sample('jf-md5-gzip.template'), path.join(dir, 'jf-md5-gzip.template'));
  for (const n of shapes.values()) {
    const file = path.join(dir, `shape${n}.jigdo`);
    await writeFile(file, plain.subarray(0, n));
    const outcome = await buildWith(file, undefined, path.join(dir, `shape${n}.iso`));
    assert.notEqual(outcome, 'missing', `length ${n}`);
  }
  const gz = readFileSync(sample('jf-md5-gzip.gz.jigdo'));
  for (let n = 0; n < gz.length; n++) {
    const file = path.join(dir, `gz${n}.jigdo`);
    await assert.rejects(parseJigdo(gz.subarray(0, n), { kind: 'file', path: file }), (err: unknown) => {
      assert.ok(err instanceof JigdoError, `gz length ${n}: ${String(err)}`);
      assert.ok(err.message.startsWith(file), err.message);
      return true;
    });
  }
});

test('truncated .jigdo files through the CLI: a clean error (exit 1) or the right image (exit 0)', async () => {
  const dir = path.join(work, 'jigdo-trunc-cli');
  await mkdir(dir);
  await copyFile(sample('jf-md5-gzip.template'), path.join(dir, 'jf-md5-gzip.template'));
  const plain = Buffer.from(JIGDO_TEXT);
  const gz = readFileSync(sample('jf-md5-gzip.gz.jigdo'));
  const at = (s: string) => plain.indexOf(s);
  const cases: Array<[string, Buffer]> = [
    ...[0, at('Version=1.') + 10, at('[Image]') + 7, at('Template=jf') + 14, at('Template-MD5Sum=') + 20, at('[Servers]'), at('[Parts]') + 30, plain.length - 1].map(
      (n) => [`t${n}.jigdo`, plain.subarray(0, n)] as [string, Buffer],
    ),
    ...[2, 100, gz.length - 1].map((n) => [`gz${n}.jigdo`, gz.subarray(0, n)] as [string, Buffer]),
  ];
  await pool(cases, 4, async ([name, bytes]) => {
    const file = path.join(dir, name);
    await writeFile(file, bytes);
    const out = path.join(dir, `${name}.iso`);
    const r = await cli(['make-image', file, '--scan', SAMPLE_PARTS, '-o', out]);
    if (r.code === 0) assert.equal(md5(await readFile(out)), IMAGE_MD5, `${name}: wrong image`);
    else {
      assertCleanFailure(r, dir);
      assert.equal(existsSync(out), false);
    }
  });
});

test('a .jigdo that is binary garbage, a template, gzip garbage, empty, a folder or missing', async () => {
  const dir = path.join(work, 'garbage');
  await mkdir(path.join(dir, 'folder.jigdo'), { recursive: true });
  const rand = prng(7);
  const garbage = Buffer.from(Array.from({ length: 4096 }, () => randInt(rand, 256)));
  await writeFile(path.join(dir, 'garbage.jigdo'), garbage);
  await writeFile(path.join(dir, 'gzip-garbage.jigdo'), Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), garbage]));
  await writeFile(path.join(dir, 'empty.jigdo'), '');
  await writeFile(path.join(dir, 'nul.jigdo'), JIGDO_TEXT.replace('[Parts]', '[Parts]\0'));
  await copyFile(sample('jf-md5-gzip.template'), path.join(dir, 'template-as.jigdo'));
  const cases: Array<[string, RegExp | undefined]> = [
    ['garbage.jigdo', /not a \.jigdo|binary/],
    ['gzip-garbage.jigdo', /gzip/],
    ['empty.jigdo', /no \[Image\]/],
    ['nul.jigdo', /binary/],
    ['template-as.jigdo', /not a \.jigdo|binary/],
    ['folder.jigdo', undefined],
    ['missing.jigdo', /not found/],
  ];
  const commands = [['info'], ['missing'], ['make-image', '-o', path.join(dir, 'x.iso')], ['verify', sample('image.iso')]];
  await pool(cases, 4, async ([name, problem], i) => {
    const cmd = commands[i % commands.length]!;
    const r = await cli([cmd[0]!, path.join(dir, name), ...cmd.slice(1)]);
    assertCleanFailure(r, path.join(dir, name), problem);
  });
  assert.equal(existsSync(path.join(dir, 'x.iso')), false);
});

test('a .jigdo with no [Image], a newer Version, or an [Include] loop', async () => {
  const dir = path.join(work, 'bad-jigdo');
  await mkdir(dir);
  await writeFile(path.join(dir, 'noimage.jigdo'), JIGDO_TEXT.replace('[Image]', '[Images]'));
  await writeFile(path.join(dir, 'v3.jigdo'), JIGDO_TEXT.replace('Version=1.2', 'Version=3.0'));
  await writeFile(path.join(dir, 'notemplate.jigdo'), JIGDO_TEXT.replace(/^Template=.*\n/m, ''));
  await writeFile(path.join(dir, 'badsum.jigdo'), JIGDO_TEXT.replace(/^Template-MD5Sum=.*$/m, 'Template-MD5Sum=wC2h6DBX5nguti6GMWtIp'));
  await writeFile(path.join(dir, 'loop-a.jigdo'), `${JIGDO_TEXT}\n[Include loop-b.jigdo]\n`);
  await writeFile(path.join(dir, 'loop-b.jigdo'), '[Servers]\nX=http://x/\n[Include loop-a.jigdo]\n');
  await copyFile(sample('jf-md5-gzip.template'), path.join(dir, 'jf-md5-gzip.template'));
  const cases: Array<[string, RegExp]> = [
    ['noimage.jigdo', /no \[Image\]/],
    ['v3.jigdo', /newer|version 3\.0/i],
    ['notemplate.jigdo', /Template/],
    ['badsum.jigdo', /Template-MD5Sum/],
    ['loop-a.jigdo', /loop/i],
  ];
  const runs = await Promise.all(cases.map(([name]) => cli(['make-image', path.join(dir, name), '--scan', SAMPLE_PARTS, '-o', path.join(dir, 'x.iso')])));
  cases.forEach(([name, problem], i) => assertCleanFailure(runs[i]!, path.join(dir, name), problem));
  assert.match(runs[4]!.stderr, /loop-b\.jigdo/);
  assert.equal(existsSync(path.join(dir, 'x.iso')), false);
});

test('a part whose [Parts] value is longer than any URL: listed missing with why, on one short line', async () => {
  const dir = path.join(work, 'long-value');
  await mkdir(path.join(dir, 'parts', 'sub'), { recursive: true });
  // Every other part is found by the scan; a.bin only under a [Parts] value of 9,000 characters, which no URL is.
  for (const f of ['b.bin', 'small.txt', 'empty', 'sub/b-copy.bin', 'sub/c.bin']) await copyFile(path.join(SAMPLE_PARTS, f), path.join(dir, 'parts', f));
  const long = `Parts:${'x'.repeat(9000)}`;
  await writeFile(path.join(dir, 'long.jigdo'), JIGDO_TEXT.replace('P6D_Q1IkDFd5tl9ZIOws9A=Parts:a.bin', `P6D_Q1IkDFd5tl9ZIOws9A=${long}`));
  await copyFile(sample('jf-md5-gzip.template'), path.join(dir, 'jf-md5-gzip.template'));
  // Not --offline: the network is asked, and has no URL to try (nothing reaches the .jigdo's own server either).
  const r = await runCli(['make-image', path.join(dir, 'long.jigdo'), '--scan', path.join(dir, 'parts'), '-o', path.join(dir, 'x.iso'),
    '--cache-dir', path.join(dir, 'cache'), '--retries', '0'], { timeoutMs: 30_000 });
  assert.equal(r.code, 1, describeRun(r));
  const line = r.stderr.split('\n').find((l) => l.startsWith('  P6D_Q1IkDFd5tl9ZIOws9A (5000 bytes)'));
  assert.ok(line, describeRun(r));
  assert.match(line, /: no URL to fetch it from \(its \[Parts\] values expand only to strings over 8192 characters\)$/);
  assert.ok(line.length < 500, `one short line, not the 9,000-character value: ${line.length} characters`);
  assert.equal(existsSync(path.join(dir, 'x.iso')), false);
});

test('verify: an image that is missing or a folder', async () => {
  const dir = path.join(work, 'verify-bad');
  await mkdir(path.join(dir, 'folder.iso'), { recursive: true });
  const [a, b] = await Promise.all([
    cli(['verify', sample('jf-md5-gzip.jigdo'), path.join(dir, 'nothere.iso')]),
    cli(['verify', sample('jf-md5-gzip.jigdo'), path.join(dir, 'folder.iso')]),
  ]);
  assertCleanFailure(a, path.join(dir, 'nothere.iso'), /not found/);
  assertCleanFailure(b, path.join(dir, 'folder.iso'));
});

test('a --cache-dir that cannot be used: one line naming it, exit 1, no hang (make-image, info, mount)', async () => {
  // /proc: Node's own recursive mkdir never returns there; a file in the way; a read-only folder.
  const file = path.join(work, 'a-file');
  await writeFile(file, 'not a folder');
  const readOnly = path.join(work, 'read-only-fs');
  await mkdir(readOnly, { recursive: true });
  await execFileAsync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', readOnly]);
  const mnt = path.join(work, 'cache-dir-mnt');
  await mkdir(mnt, { recursive: true });
  try {
    for (const [dir, problem] of [
      ['/proc/jigdofs-cache', /ENOENT/],
      [path.join(file, 'cache'), /ENOTDIR/],
      [path.join(readOnly, 'cache'), /EROFS/],
    ] as const) {
      for (const args of [
        ['make-image', sample('jf-md5-gzip.jigdo'), '-o', path.join(work, 'never.iso'), '--scan', SAMPLE_PARTS],
        ['info', sample('jf-md5-gzip.jigdo')],
        ['mount', sample('jf-md5-gzip.jigdo'), mnt],
      ]) {
        const r = await runCli([...args, '--cache-dir', dir], { timeoutMs: 30_000 });
        assertCleanFailure(r, dir, new RegExp(`cannot be used as the cache directory: ${problem.source}`));
      }
    }
    assert.ok(!existsSync(path.join(work, 'never.iso')));
    assert.ok(!(await readFile('/proc/mounts', 'utf8')).includes(mnt), 'no mount left behind');
  } finally {
    await execFileAsync('umount', [readOnly]).catch(() => undefined);
  }
});
