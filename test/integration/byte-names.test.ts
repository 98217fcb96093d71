// Part names that are not UTF-8 (issue 13, item 1), end to end through the CLI from dist/: a file tree
// with Latin-1 (`caf\xe9.bin`), CP437 (`M\x81ller.pdf`) and MacRoman (`M\x8archen.bin`) names, and a UTF-8
// one, made into a .jigdo by jigdo-file (the oracle). info, missing (byte for byte as jigdo-file prints
// it), make-image from --local, --scan and a real HTTP mirror, and a FUSE mount all give the image.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { BIN, prng, randInt, runCli } from '../helpers/cli.js';
import { md5hex } from '../helpers/hash.js';
import { startMirror, type Mirror } from '../helpers/mirror-server.js';
import { httpGet, startServe } from '../helpers/serve.js';
import { mountJigdo } from '../helpers/mount.js';
import { userActor } from '../helpers/actor.js';
import { indexFiles } from '../helpers/hash-index-file.js';

const run = promisify(execFile);
const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
/** Relative names under tree/parts, as bytes. */
const NAMES = [latin1('caf\xe9.bin'), latin1('M\x81ller.pdf'), Buffer.concat([latin1('sub/M\x8archen.bin')]), Buffer.from('café utf8.bin')];

let work: string;
let jigdo: string;
let imageMd5: string;
let mirror: Mirror;
const under = (dir: string, name: Buffer): Buffer => Buffer.concat([Buffer.from(`${dir}/`), name]);

/** tree/parts with the byte-named files, an image holding them between random raw data, and jigdo-file's .jigdo. */
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-byte-names-'));
  const parts = path.join(work, 'tree', 'parts');
  await mkdir(path.join(parts, 'sub'), { recursive: true });
  const rand = prng(13);
  const random = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => randInt(rand, 256)));
  const pieces: Buffer[] = [random(4096)];
  for (const [i, name] of NAMES.entries()) {
    const content = random(2000 + 300 * i);
    await writeFile(under(parts, name), content);
    pieces.push(content, Buffer.alloc(2048 - (content.length % 2048)));
  }
  pieces.push(random(1000));
  const image = Buffer.concat(pieces);
  imageMd5 = md5hex(image);
  await writeFile(path.join(work, 'disc.img'), image);
  await run('jigdo-file', [
    'make-template', '-r', 'quiet', '--force', '--no-cache', '--image=disc.img', '--jigdo=disc.jigdo', '--template=disc.template',
    '--label', 'Disc=tree/parts', '--uri', 'Disc=http://127.0.0.1:9/parts/', 'tree/parts//',
  ], { cwd: work });
  jigdo = path.join(work, 'disc.jigdo');
  const text = await readFile(jigdo);
  assert.ok(text.includes(latin1('Disc:caf\xe9.bin')), 'jigdo-file wrote the raw Latin-1 name');
  mirror = await startMirror({ root: path.join(work, 'tree') });
});

after(async () => {
  await mirror?.close();
  await rm(work, { recursive: true, force: true });
});

const cache = (name: string): string[] => ['--cache-dir', path.join(work, `cache-${name}`)];

test('info reads it (exit 0), and missing prints the candidates byte for byte as jigdo-file does', async () => {
  const info = await runCli(['info', jigdo, ...cache('info')]);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /Parts: +4 distinct/);
  const ours = await run(process.execPath, [BIN, 'missing', jigdo, '--offline', ...cache('missing')], { encoding: 'buffer', env: { ...process.env, JIGDOFS_DEBUG: '' } });
  const oracle = await run('jigdo-file', ['print-missing-all', '--no-cache', '-j', jigdo, '-t', path.join(work, 'disc.template')], { encoding: 'buffer' });
  assert.ok(ours.stdout.includes(latin1('http://127.0.0.1:9/parts/caf\xe9.bin\n')));
  assert.deepEqual(ours.stdout, oracle.stdout);
});

test('a part no source has is named with \\xNN in the message, never U+FFFD', async () => {
  const r = await runCli(['make-image', jigdo, '-o', path.join(work, 'none.img'), '--offline', ...cache('none')]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /Disc:caf\\xe9\.bin/);
  assert.match(r.stderr, /Disc:M\\x81ller\.pdf/);
  assert.doesNotMatch(r.stderr, /\ufffd/);
});

test('make-image from --local and from --scan: right image, and the hash index keeps the exact names', async () => {
  const local = path.join(work, 'local.img');
  const r1 = await runCli(['make-image', jigdo, '-o', local, '--offline', '--local', `Disc=${path.join(work, 'tree', 'parts')}`, ...cache('local')]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(md5hex(await readFile(local)), imageMd5);
  const scanned = path.join(work, 'scan.img');
  const r2 = await runCli(['make-image', jigdo, '-o', scanned, '--offline', '--scan', path.join(work, 'tree'), ...cache('scan')]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(md5hex(await readFile(scanned)), imageMd5);
  const files = await indexFiles(path.join(work, 'cache-scan', 'hash-index.jsonl'));
  const keys = Object.keys(files).map((k) => Buffer.from(k.replace(/[\udc80-\udcff]/gu, (c) => String.fromCharCode(c.charCodeAt(0) - 0xdc00)), 'latin1'));
  for (const name of NAMES.slice(0, 3)) {
    assert.ok(keys.some((k) => k.equals(under(path.join(work, 'tree', 'parts'), name))), `${name.toString('latin1')} kept exactly`);
  }
});

test('make-image over HTTP asks the mirror for the exact bytes (%E9) and a mount serves the same image', async () => {
  mirror.reset();
  const out = path.join(work, 'http.img');
  const r = await runCli(['make-image', jigdo, '-o', out, '--mirror', `Disc=${mirror.url}parts/`, ...cache('http')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(md5hex(await readFile(out)), imageMd5);
  assert.ok(mirror.requests.every((q) => q.status === 200 || q.status === 206), JSON.stringify(mirror.requests));
  assert.ok(mirror.requests.some((q) => q.path === '/parts/caf\udce9.bin'), 'the Latin-1 name was requested as its byte');
  mirror.reset();
  const m = await mountJigdo(jigdo, ['--mirror', `Disc=${mirror.url}parts/`]);
  try {
    assert.equal(md5hex(await readFile(m.file('disc.img'))), imageMd5);
  } finally {
    await m.cleanup();
  }
});

test('an image whose Filename is not UTF-8: make-image writes that exact name, serve answers at its %XX URL', async () => {
  const named = path.join(work, 'named.jigdo');
  await writeFile(named, latin1((await readFile(jigdo)).toString('latin1').replace('Filename=disc.img', 'Filename=d\xefsc.img')));
  const local = ['--offline', '--local', `Disc=${path.join(work, 'tree', 'parts')}`];
  const out = path.join(work, 'out');
  await mkdir(out);
  const r = await runCli(['make-image', named, ...local, ...cache('named')], { cwd: out });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /wrote .*\/d\\xefsc\.img: /);
  assert.equal(md5hex(await readFile(under(out, latin1('d\xefsc.img')))), imageMd5);
  const server = await startServe([named, ...local, ...cache('serve')]);
  try {
    assert.match(server.log(), /serving http:\/\/127\.0\.0\.1:\d+\/d%EFsc\.img /);
    const got = await httpGet(`${server.url}d%EFsc.img`);
    assert.equal(got.status, 200);
    assert.equal(md5hex(got.body), imageMd5);
  } finally {
    await server.stop();
  }
});

test('a mount lists an image whose Filename is not UTF-8 by its escaped name (d\\xefsc.img), which opens and reads exact', async () => {
  // fuse-native passes names to and from libfuse as UTF-8 strings only: the byte 0xEF alone cannot cross it
  // (it came back as U+FFFD, listed but impossible to open). The least bad answer: the \xNN of messages.
  const named = path.join(work, 'named-mount.jigdo');
  await writeFile(named, latin1((await readFile(jigdo)).toString('latin1').replace('Filename=disc.img', 'Filename=d\xefsc.img')));
  const m = await mountJigdo(named, ['--offline', '--local', `Disc=${path.join(work, 'tree', 'parts')}`]);
  try {
    const { readdir } = await import('node:fs/promises');
    const names = await readdir(m.mnt, { encoding: 'buffer' });
    assert.deepEqual(names.map((n) => n.toString('latin1')), ['d\\xefsc.img']);
    assert.equal(md5hex(await readFile(m.file('d\\xefsc.img'))), imageMd5);
    const status = (await m.status()) as { images: Array<{ name: string }> };
    assert.equal(status.images[0]!.name, 'd\\xefsc.img');
  } finally {
    await m.cleanup();
  }
});

test('a .jigdo path and a --local folder that are not UTF-8 on the command line: info, make-image and mount use their exact bytes', async () => {
  // Node decodes argv as UTF-8 (0xE9 alone becomes U+FFFD): jigdofs takes such arguments from /proc/self/cmdline.
  // spawn() cannot pass raw bytes either, so the commands run through sh, whose printf makes the bytes.
  const dir = under(work, latin1('d\xe9'));
  await mkdir(dir);
  await writeFile(Buffer.concat([dir, latin1('/n\xe9.jigdo')]), await readFile(jigdo));
  await writeFile(Buffer.concat([dir, Buffer.from('/disc.template')]), await readFile(path.join(work, 'disc.template')));
  await run('cp', ['-a', path.join(work, 'tree', 'parts'), path.join(work, 'p\ufffdrts-tmp')]);
  await run('sh', ['-c', `mv "$W/p\ufffdrts-tmp" "$W/$(printf 'p\\351rts')"`], { env: { ...process.env, W: work } });
  const out = path.join(work, 'argv.img');
  const mnt = path.join(work, 'argv-mnt');
  await mkdir(mnt);
  const sh = async (args: string): Promise<{ stdout: string; stderr: string }> =>
    run('sh', ['-c', `J="$W/$(printf 'd\\351/n\\351.jigdo')"; L="Disc=$W/$(printf 'p\\351rts')"; exec node "$BIN" ${args}`], {
      env: { ...process.env, W: work, BIN, XDG_CACHE_HOME: path.join(work, 'argv-cache'), XDG_CONFIG_HOME: path.join(work, 'argv-config') },
    });
  const info = await sh('info "$J" --offline');
  assert.match(info.stdout, /disc\.img/);
  await sh(`make-image "$J" --offline --local "$L" -o ${out}`);
  assert.equal(md5hex(await readFile(out)), imageMd5);
  await sh(`mount "$J" ${mnt} --offline --local "$L"`);
  try {
    assert.equal(md5hex(await readFile(path.join(mnt, 'disc.img'))), imageMd5);
  } finally {
    assert.equal((await runCli(['umount', mnt])).code, 0);
  }
});

test('as a regular user too: the mount lists d\\xefsc.img, which reads exact, and umount works', async () => {
  const named = path.join(work, 'named-user.jigdo');
  await writeFile(named, latin1((await readFile(jigdo)).toString('latin1').replace('Filename=disc.img', 'Filename=d\xefsc.img')));
  const A = userActor({ runtimeDir: true });
  try {
    A.share(work);
    const mnt = path.join(A.tempDir('jigdofs-byte-names-user-'), 'mnt');
    await A.run('mkdir', [mnt]);
    const r = await A.cli(['mount', named, mnt, '--offline', '--local', `Disc=${path.join(work, 'tree', 'parts')}`]);
    assert.equal(r.code, 0, r.stderr);
    try {
      assert.equal((await A.runBuffer('ls', [mnt])).toString('latin1'), 'd\\xefsc.img\n');
      assert.equal(md5hex(await A.runBuffer('cat', [path.join(mnt, 'd\\xefsc.img')])), imageMd5);
    } finally {
      assert.equal((await A.cli(['umount', mnt])).code, 0);
    }
  } finally {
    A.close();
  }
});
