// make-image -o -: the image on standard output (jigdo-file's --image=-), into a file, a pipe, a reader that stops
// early, and a terminal; a part whose copy is wrong is never written (every part is checked before its bytes go out).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { chmod, cp, open, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BIN } from '../helpers/cli.js';
import { buildFixtures, type FixtureSet, type FixtureVariant } from '../helpers/fixtures.js';
import { md5hex } from '../helpers/hash.js';
import { startMirror } from '../helpers/mirror-server.js';
import { cacheFiles, jigdoWithServers, partsUri } from '../helpers/network.js';

const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-stdout-'));
after(() => rmSync(work, { recursive: true, force: true }));
let fx: FixtureSet;
before(async () => {
  fx = await buildFixtures();
});

interface ShellRun {
  /** jigdofs's exit code (not the pipe's last command's). */
  code: number;
  stderr: string;
}

let runs = 0;
/**
 * `jigdofs ARGS` in bash, its standard output going where `redirect` says; offline, with a cache of its own unless told.
 * `asProgram`: run bin/jigdofs itself (its shell line first), not `node bin/jigdofs`.
 */
function shell(args: string[], redirect: string, opts: { cache?: string; online?: boolean; asProgram?: boolean } = {}): Promise<ShellRun> {
  const more = [...(opts.online ? [] : ['--offline']), '--cache-dir', opts.cache ?? path.join(work, `cache-${++runs}`)];
  const quoted = [...(opts.asProgram ? [] : [process.execPath]), BIN, ...args, ...more].map((a) => `'${a}'`).join(' ');
  const env = { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}`, XDG_CACHE_HOME: work, XDG_CONFIG_HOME: work, JIGDOFS_DEBUG: '' };
  return new Promise((resolve, reject) => {
    execFile('bash', ['-c', `${quoted} ${redirect}; echo "exit \${PIPESTATUS[0]}" >&2`], { cwd: work, env, timeout: 60_000 }, (err, _stdout, stderr) => {
      if (err) return reject(err);
      const m = /exit (\d+)\n$/.exec(stderr);
      if (!m) return reject(new Error(`no exit code in:\n${stderr}`));
      resolve({ code: Number(m[1]), stderr: stderr.slice(0, m.index) });
    });
  });
}

/** A --local folder for `v`'s [Parts] label: a copy of its parts. */
async function localParts(v: FixtureVariant, name: string): Promise<string> {
  const dir = path.join(work, name);
  await cp(v.partsDir, dir, { recursive: true });
  return dir;
}

for (const name of ['jf-md5-gzip', 'jte-sha256-bzip2'] as const) {
  test(`${name}: -o - writes the image to a file and through a pipe, and no file named "-"`, async () => {
    const v = fx.variants[name];
    const parts = await localParts(v, `parts-${name}`);
    const image = await readFile(v.image);
    const source = [v.jigdo, '--local', `Parts=${parts}`];
    const toFile = path.join(work, `${name}.out`);
    const r = await shell(['make-image', ...source, '-o', '-'], `> '${toFile}'`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^jigdofs: wrote standard output: ${image.length} bytes, ${v.checksum} OK`));
    assert.equal(md5hex(await readFile(toFile)), v.imageMd5);
    const piped = path.join(work, `${name}.piped`);
    const p = await shell(['make-image', ...source, '-o', '-', '-q'], `| cat > '${piped}'`);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.stderr, '');
    assert.equal(md5hex(await readFile(piped)), v.imageMd5);
    assert.ok(!(await readdir(work)).includes('-'), 'no file named "-"');
  });
}

test('-o -: a copy with wrong bytes is never written; the output stops before its part, which is named', async () => {
  const v = fx.variants['jf-md5-gzip'];
  const parts = await localParts(v, 'parts-wrong');
  const e = path.join(parts, 'pool', 'e-3m.bin');
  const bytes = await readFile(e);
  bytes[1000]! ^= 0xff; // the same size, one byte other: taken unhashed, make-image's file would have it until its image checksum
  await writeFile(e, bytes);
  const out = path.join(work, 'wrong.out');
  const r = await shell(['make-image', v.jigdo, '--local', `Parts=${parts}`, '-o', '-'], `> '${out}'`);
  assert.equal(r.code, 1, r.stderr);
  const written = await readFile(out);
  const m = /^jigdofs: standard output: not written whole \(it stops after (\d+) bytes\): 1 part\(s\) missing:\n {2}\S+ \(3000000 bytes\) .*e-3m\.bin/.exec(r.stderr);
  assert.ok(m, r.stderr);
  assert.equal(Number(m[1]), written.length);
  assert.ok(written.length < v.imageSize);
  assert.ok(written.equals((await readFile(v.image)).subarray(0, written.length)), 'every byte written is the image\'s');
});

test('-o -: a reader that stops early ends the run in one line; a terminal is refused before any work', async () => {
  const v = fx.variants['jf-md5-gzip'];
  const parts = await localParts(v, 'parts-early');
  const early = await shell(['make-image', v.jigdo, '--local', `Parts=${parts}`, '-o', '-'], '| head -c 1000 > /dev/null');
  assert.equal(early.code, 1, early.stderr);
  assert.match(early.stderr, /^jigdofs: standard output: closed by its reader after at least \d+ bytes: the image was not written whole\n$/);
  // script(1) gives the command a terminal for its standard output.
  const cmd = [process.execPath, BIN, 'make-image', v.jigdo, '--offline', '--cache-dir', path.join(work, 'tty-cache'), '-o', '-'].map((a) => `'${a}'`).join(' ');
  const tty = await new Promise<{ code: number; out: string }>((resolve) =>
    execFile('script', ['-qec', cmd, '/dev/null'], { cwd: work, timeout: 30_000 }, (err, stdout) => resolve({ code: (err as { code?: number } | null)?.code ?? 0, out: stdout })),
  );
  assert.equal(tty.code, 2, tty.out);
  assert.match(tty.out, /jigdofs: -o -: standard output is a terminal: redirect it, or give a file name/);
});

test('-o - with standard output closed (>&-) fails at the first write, and a listing does too; neither says it wrote', async () => {
  const v = fx.variants['jf-md5-gzip'];
  const parts = await localParts(v, 'parts-closed');
  // Node opens /dev/null on a closed fd 1 before any code runs: the image went there, "wrote standard output", exit 0.
  const image = await shell(['make-image', v.jigdo, '--local', `Parts=${parts}`, '-o', '-'], '>&-', { asProgram: true });
  assert.equal(image.code, 1, image.stderr);
  assert.match(image.stderr, /^jigdofs: standard output: .*EBADF/m);
  assert.doesNotMatch(image.stderr, /wrote/);
  const listing = await shell(['info', v.jigdo], '>&-', { asProgram: true });
  assert.equal(listing.code, 1, listing.stderr);
  assert.equal(listing.stderr, 'jigdofs: standard output: cannot write: EBADF: bad file descriptor, write\n');
  // /dev/null asked for is no failure, and neither is a closed standard output where a command writes nothing.
  const asked = await shell(['make-image', v.jigdo, '--local', `Parts=${parts}`, '-o', '-'], '> /dev/null', { asProgram: true });
  assert.equal(asked.code, 0, asked.stderr);
  const toFile = path.join(work, 'closed.iso');
  const quiet = await shell(['make-image', v.jigdo, '--local', `Parts=${parts}`, '-o', toFile], '>&-', { asProgram: true });
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(md5hex(await readFile(toFile)), md5hex(await readFile(v.image)));
});

test('bin/jigdofs runs where there is no /dev/null (a sandbox): its test of a closed standard output needs none', { skip: process.getuid?.() !== 0 && 'needs root (a private /dev, then a user)' }, async () => {
  // Found by a review: `2>/dev/null` in the shell line failed every command, as a user, where /dev had no null.
  const v = fx.variants['jf-md5-gzip'];
  const dir = mkdtempSync(path.join(tmpdir(), 'jigdofs-no-dev-null-')); // (not under `work`: the user cannot enter it)
  after(() => rmSync(dir, { recursive: true, force: true }));
  await chmod(dir, 0o777);
  await cp(v.jigdo, path.join(dir, 'x.jigdo'));
  await cp(v.template, path.join(dir, path.basename(v.template)));
  await chmod(path.join(dir, 'x.jigdo'), 0o644);
  await chmod(path.join(dir, path.basename(v.template)), 0o644);
  const inner = `mount -t tmpfs -o mode=755 none /dev && exec setpriv --reuid=65534 --regid=65534 --clear-groups '${BIN}' info --offline --cache-dir '${dir}/cache' '${dir}/x.jigdo'`;
  const env = { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}`, HOME: dir, XDG_CACHE_HOME: dir, XDG_CONFIG_HOME: dir };
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile('unshare', ['-m', 'sh', '-c', inner], { env, timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: (err as { code?: number } | null)?.code ?? 0, stdout, stderr })),
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Image: +image\.iso$/m);
});

test('-o -: the parts downloaded leave the cache once the image went out whole, as with a file; --keep-parts keeps them', async () => {
  const v = fx.variants['jf-md5-gzip'];
  const web = await startMirror({ root: fx.tree });
  try {
    const jigdo = await jigdoWithServers(v, [partsUri(web)], path.join(work, 'drop'));
    const cachedParts = async (cache: string): Promise<number> => (await cacheFiles(cache)).filter((f) => f.file.includes(`${path.sep}parts${path.sep}`) && f.size > 0).length;
    for (const keep of [false, true]) {
      const cache = path.join(work, `drop-cache-${keep}`);
      const out = path.join(work, `drop-${keep}.out`);
      const r = await shell(['make-image', jigdo, '-o', '-', ...(keep ? ['--keep-parts'] : [])], `> '${out}'`, { cache, online: true });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(md5hex(await readFile(out)), v.imageMd5);
      assert.ok(web.requests.length > 0);
      if (keep) assert.ok((await cachedParts(cache)) >= 3, `--keep-parts: ${JSON.stringify(await cacheFiles(cache))}`);
      else assert.equal(await cachedParts(cache), 0, JSON.stringify(await cacheFiles(cache)));
    }
  } finally {
    await web.close();
  }
});

test('-o -: a cached part damaged since its commit makes a wrong image; the copy is named and dropped, and the next run is right', async () => {
  const v = fx.variants['jf-md5-gzip'];
  const web = await startMirror({ root: fx.tree });
  try {
    const jigdo = await jigdoWithServers(v, [partsUri(web)], path.join(work, 'rot'));
    const cache = path.join(work, 'rot-cache');
    const fill = await shell(['make-image', jigdo, '-o', path.join(work, 'rot.iso'), '--keep-parts'], '', { cache, online: true });
    assert.equal(fill.code, 0, fill.stderr);
    const [part] = (await cacheFiles(cache)).filter((f) => f.file.includes(`${path.sep}parts${path.sep}`)).sort((a, b) => b.size - a.size);
    const before = await stat(part!.file);
    const fh = await open(part!.file, 'r+');
    await fh.write(Buffer.from('XX'), 0, 2, 100); // bit rot, not an edit: same size, and its mtime as it was
    await fh.close();
    await utimes(part!.file, before.atime, before.mtime);
    const out = path.join(work, 'rot.out');
    const r = await shell(['make-image', jigdo, '-o', '-'], `> '${out}'`, { cache, online: true });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^jigdofs: standard output: the image's MD5 is [0-9a-f]{32}, expected [0-9a-f]{32}: the bytes written are not this image; 1 part copy was wrong and is no longer used: run it again$/m);
    assert.ok(r.stderr.includes(part!.file), `the bad copy is named:\n${r.stderr}`);
    const again = await shell(['make-image', jigdo, '-o', '-'], `> '${out}'`, { cache, online: true });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(md5hex(await readFile(out)), v.imageMd5);
  } finally {
    await web.close();
  }
});
