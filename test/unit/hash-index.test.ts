/** The hash index keys on what a user cannot reset, does not trust older index files, and is private. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { HashIndex, LEGACY_INDEX, MAKE_TEMPLATE_INDEX, SESSION_INDEX, loadMakeTemplateIndex, loadSessionIndex, nextSaveDelay } from '../../src/sources/hash-index.js';
import { identityOf } from '../../src/sources/file-identity.js';
import { ownerTag } from '../../src/util/pid.js';
import { indexFiles } from '../helpers/hash-index-file.js';
import { LaterValues } from '../../src/sources/hash-index-lines.js';

const run = promisify(execFile);
let work: string;

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-hash-index-'));
});
after(() => rm(work, { recursive: true, force: true }));

test('an edit that keeps size and mtime (touch -r) is a miss', async () => {
  const file = path.join(work, 'part.bin');
  await writeFile(file, Buffer.alloc(10000, 1));
  const index = await HashIndex.load(undefined);
  const before = identityOf(await stat(file));
  index.set(file, before, 'md5', 'SUM');
  assert.equal(index.get(file, identityOf(await stat(file)), 'md5'), 'SUM');

  await run('touch', ['-r', file, `${file}.ref`]);
  const fh = await open(file, 'r+');
  await fh.write(Buffer.alloc(100, 2), 0, 100, 5000);
  await fh.close();
  await run('touch', ['-r', `${file}.ref`, file]);
  const after = identityOf(await stat(file));
  assert.equal(after.size, before.size);
  assert.equal(after.mtimeMs, before.mtimeMs, 'touch -r put the mtime back');
  assert.equal(index.get(file, after, 'md5'), undefined);
  assert.equal(index.previous(file, 'md5'), 'SUM', 'what it held before is still known, to name the file');
});

test('another file under the same path (inode, device) is a miss', async () => {
  const index = await HashIndex.load(undefined);
  const id = { size: 5, mtimeMs: 1000, ctimeMs: 2000, ino: 42, dev: 7 };
  index.set('/x', id, 'md5', 'SUM');
  assert.equal(index.get('/x', { ...id }, 'md5'), 'SUM');
  for (const field of ['size', 'mtimeMs', 'ctimeMs', 'ino', 'dev'] as const) {
    assert.equal(index.get('/x', { ...id, [field]: id[field] + 1 }, 'md5'), undefined, `${field} differs`);
  }
});

test('values: every value of a file in one lookup, under the same identity rule; none for a device, or an entry read back with a non-string value', async () => {
  const file = path.join(work, 'values.jsonl');
  const index = await HashIndex.load(file);
  const id = { size: 5, mtimeMs: 1000, ctimeMs: 2000, ino: 42, dev: 7 };
  index.setValues('/v', id, [['md5', 'M'], ['zeros', '0']]);
  assert.deepEqual(index.values('/v', id), { md5: 'M', zeros: '0' });
  assert.equal(index.values('/v', { ...id, ctimeMs: 2001 }), undefined);
  assert.equal(index.values('/v', { ...id, medium: 'sr0:1' }), undefined, 'a device is never looked up');
  await index.save();
  // A value that is not a string (hand-edited) is dropped alone; the entry read back keeps the others.
  const text = (await readFile(file, 'utf8')).replace('"zeros":"0"', '"zeros":0');
  await writeFile(file, text);
  const read = await HashIndex.load(file);
  assert.deepEqual(read.values('/v', id), { md5: 'M' });
});

test('a save removes the lock file a killed process\'s save left in the cache (make-template opens no cache that would)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-index-spare-'));
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  const tmp = path.join(dir, 'parts', 'tmp');
  try {
    await mkdir(tmp, { recursive: true });
    const left = [`${ownerTag(deadPid)}-lock.spare`, `${ownerTag()}-keep.partial`];
    for (const name of left) await writeFile(path.join(tmp, name), 'x');
    const index = await loadMakeTemplateIndex(dir);
    index.setValue('/f', { size: 1, mtimeMs: 1, ctimeMs: 1, ino: 1, dev: 1 }, 'md5', 'M');
    await index.save();
    const now = await readdir(tmp);
    assert.ok(!now.includes(left[0]!), 'the dead one\'s is gone');
    assert.ok(now.includes(left[1]!), 'a live one\'s stays');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a version 1 index (path, size, mtime) is not trusted', async () => {
  const file = path.join(work, 'v1.bin');
  await writeFile(file, 'some bytes');
  const st = await stat(file);
  const indexFile = path.join(work, 'v1-index.json');
  await writeFile(indexFile, JSON.stringify({ version: 1, files: { [file]: { size: st.size, mtimeMs: st.mtimeMs, sums: { md5: 'LIE' } } } }));
  const index = await HashIndex.load(indexFile);
  assert.equal(index.get(file, identityOf(st), 'md5'), undefined);
});

test('forget drops an entry, on disk too, and the index file is private (0600) under umask 022', async () => {
  const old = process.umask(0o022);
  try {
    const indexFile = path.join(work, 'sub', 'dir', 'hash-index.json');
    const a = await HashIndex.load(indexFile);
    const id = { size: 1, mtimeMs: 1, ctimeMs: 1, ino: 1, dev: 1 };
    a.set('/a', id, 'md5', 'A');
    a.set('/b', id, 'md5', 'B');
    await a.save();
    assert.equal((await stat(indexFile)).mode & 0o777, 0o600);
    assert.equal((await stat(path.dirname(indexFile))).mode & 0o777, 0o700);
    assert.equal((await stat(path.join(work, 'sub'))).mode & 0o777, 0o700);
    const b = await HashIndex.load(indexFile);
    b.forget('/a');
    await b.save();
    assert.deepEqual(Object.keys(await indexFiles(indexFile)), ['/b']);
  } finally {
    process.umask(old);
  }
});

test('two saves of one index at once lose nothing (the delayed save racing an explicit one)', async () => {
  const file = path.join(work, 'race.json');
  const index = await HashIndex.load(file);
  const id = { size: 1, mtimeMs: 1, ctimeMs: 1, ino: 1, dev: 1 };
  for (let i = 0; i < 200; i++) index.set(`/a/${i}`, id, 'md5', `A${i}`);
  const first = index.save(); // still reading what is on disk when the second starts
  for (let i = 0; i < 200; i++) index.set(`/b/${i}`, id, 'md5', `B${i}`);
  await Promise.all([first, index.save()]);
  const again = await HashIndex.load(file);
  assert.equal(again.get('/a/7', id, 'md5'), 'A7');
  assert.equal(again.get('/b/7', id, 'md5'), 'B7');
});

test('entries of the wrong shape are dropped one by one; the rest of the index is kept', async () => {
  const file = path.join(work, 'shapes.json');
  const id = { size: 1, mtimeMs: 2, ctimeMs: 3, ino: 4, dev: 5 };
  await writeFile(file, JSON.stringify({
    version: 2,
    files: {
      '/good': { ...id, sums: { md5: 'GOOD', sha256: 7 } },
      '/null-sums': { ...id, sums: null },
      '/array-sums': { ...id, sums: ['x'] },
      '/no-identity': { sums: { md5: 'X' } },
      '/string-size': { ...id, size: '1', sums: { md5: 'X' } },
      '/null': null,
    },
  }));
  const index = await HashIndex.load(file);
  assert.equal(index.get('/good', id, 'md5'), 'GOOD');
  assert.equal(index.get('/good', id, 'sha256'), undefined, 'a checksum that is no string is not one');
  for (const name of ['/null-sums', '/array-sums', '/no-identity', '/string-size', '/null']) {
    assert.equal(index.previous(name, 'md5'), undefined, name); // threw "Cannot read properties of null" for /null-sums
    assert.equal(index.get(name, id, 'md5'), undefined, name);
  }
  index.set('/null-sums', id, 'md5', 'NEW'); // recorded anew
  assert.equal(index.get('/null-sums', id, 'md5'), 'NEW');
});

test('a process that ends while it saves the index (a signal, an unmount) leaves no temporary index file', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-index-exit-'));
  const module = new URL('../../src/sources/hash-index.ts', import.meta.url).href;
  const file = path.join(dir, 'hash-index.json');
  // Many entries: the save writes a few MB, and the process ends once its temporary file is there.
  const script = `
    import { readdirSync } from 'node:fs';
    const { HashIndex } = await import(${JSON.stringify(module)});
    const index = await HashIndex.load(${JSON.stringify(file)});
    for (let i = 0; i < 100000; i++) index.set('/some/where/file-' + i + '.deb', { size: i, mtimeMs: i, ctimeMs: i, ino: i, dev: 1 }, 'md5', 'x'.repeat(22));
    void index.save().catch(() => undefined);
    while (!readdirSync(${JSON.stringify(dir)}).some((f) => f.endsWith('.tmp'))) await new Promise((r) => setImmediate(r));
    process.exit(0);`;
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.tmp')), [], 'the temporary index file is gone (on the old code it stayed for good)');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an index far denser in objects than ours is not read (13 million `{}` in 39 MB took 12.6 s and 1.1 GB, every run)', async () => {
  const file = path.join(work, 'dense.bin');
  await writeFile(file, 'some bytes');
  const st = await stat(file);
  const entry = { ...identityOf(st), sums: { md5: 'SUM' } };
  const indexFile = path.join(work, 'dense-index.json');
  const padding = `[${Array.from({ length: 20_000 }, () => '{}').join(',')}]`;
  await writeFile(indexFile, `{"version":2,"files":{${JSON.stringify(file)}:${JSON.stringify(entry)},"pad":${padding}}}`);
  assert.equal((await HashIndex.load(indexFile)).get(file, identityOf(st), 'md5'), undefined);
  // The same entry in an index of our own shape is read.
  await writeFile(indexFile, JSON.stringify({ version: 2, files: { [file]: entry } }));
  assert.equal((await HashIndex.load(indexFile)).get(file, identityOf(st), 'md5'), 'SUM');
});

test('the delayed save waits 20 times as long as the last save took, and never less than 2 s', () => {
  assert.equal(nextSaveDelay(0), 2000);
  assert.equal(nextSaveDelay(100), 2000);
  assert.equal(nextSaveDelay(500), 10_000, 'a save of a big index (half a second) is not repeated every 2 s');
  assert.equal(nextSaveDelay(3000), 60_000);
});

test('a save merges what another process saved since this one last read or wrote the index, and drops nothing of its own', async () => {
  const file = path.join(work, 'two-processes.json');
  const id = { size: 1, mtimeMs: 1, ctimeMs: 1, ino: 1, dev: 1 };
  const a = await HashIndex.load(file);
  const b = await HashIndex.load(file);
  a.set('/a1', id, 'md5', 'A1');
  await a.save();
  b.set('/b1', id, 'md5', 'B1');
  await b.save(); // read a's save, merged
  a.set('/a2', id, 'md5', 'A2');
  await a.save(); // the file is b's now, not the one a wrote: read again
  a.set('/a3', id, 'md5', 'A3');
  await a.save(); // the file a wrote: not read, still complete
  const saved = await indexFiles(file);
  assert.deepEqual(Object.keys(saved).sort(), ['/a1', '/a2', '/a3', '/b1']);
  assert.equal(saved['/b1']!.sums.md5, 'B1');
  const again = await HashIndex.load(file);
  for (const [name, sum] of [['/a1', 'A1'], ['/a2', 'A2'], ['/a3', 'A3'], ['/b1', 'B1']] as const) assert.equal(again.get(name, id, 'md5'), sum);
});

test('an index of many entries is written whole, in pieces, and reads back entry by entry', async () => {
  const file = path.join(work, 'many.json');
  const index = await HashIndex.load(file);
  for (let i = 0; i < 5001; i++) index.set(`/many/${i} "quoted"\n`, { size: i, mtimeMs: i + 0.5, ctimeMs: i, ino: i, dev: 1 }, 'md5', `S${i}`);
  await index.save();
  assert.equal(Object.keys(await indexFiles(file)).length, 5001);
  const again = await HashIndex.load(file);
  assert.equal(again.get('/many/5000 "quoted"\n', { size: 5000, mtimeMs: 5000.5, ctimeMs: 5000, ino: 5000, dev: 1 }, 'md5'), 'S5000');
});

test('a save killed before its rename left its temporary copy: the next load removes it (only a dead process of this host\'s)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-index-dead-'));
  const file = path.join(dir, 'hash-index.json');
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  const dead = `hash-index.json.${ownerTag(deadPid)}-0a1b2c3d.tmp`;
  const live = `hash-index.json.${ownerTag()}-0a1b2c3d.tmp`;
  const otherHost = 'hash-index.json.0badcafe-1-0a1b2c3d.tmp';
  const oldFormatStale = 'hash-index.json.1234.0a1b2c3d.tmp'; // versions before: no host in the name, so by age
  const oldFormatRecent = 'hash-index.json.1235.0a1b2c3d.tmp';
  try {
    for (const name of [dead, live, otherHost, 'unrelated.tmp', oldFormatStale, oldFormatRecent]) await writeFile(path.join(dir, name), '{}');
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
    await utimes(path.join(dir, oldFormatStale), twoDaysAgo, twoDaysAgo);
    await HashIndex.load(file);
    assert.deepEqual((await readdir(dir)).sort(), [live, otherHost, 'unrelated.tmp', oldFormatRecent].sort(), 'the dead save\'s copy is gone (on the old code it stayed for good)');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a save that the file size limit cuts short fails and leaves no index cut short (a short write was taken for all of it)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-index-short-'));
  const module = new URL('../../src/sources/hash-index.ts', import.meta.url).href;
  const file = path.join(dir, 'hash-index.json');
  // 1,500 entries: one piece of ~200 KB, written past a 100 KiB limit (ulimit -f 100): write(2) writes what fits.
  const script = `
    const { HashIndex } = await import(${JSON.stringify(module)});
    const index = await HashIndex.load(${JSON.stringify(file)});
    for (let i = 0; i < 1500; i++) index.set('/some/where/file-' + i + '.deb', { size: i, mtimeMs: i, ctimeMs: i, ino: i, dev: 1 }, 'md5', 'x'.repeat(120));
    await index.save().then(() => console.log('saved'), (err) => console.log('failed: ' + err.code));`;
  try {
    const r = spawnSync('sh', ['-c', 'ulimit -f 100; exec "$0" --import tsx --input-type=module -e "$1"', process.execPath, script], { encoding: 'utf8', timeout: 60_000 });
    assert.match(r.stdout, /failed: EFBIG/, r.stderr);
    const left = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => !e.isDirectory());
    assert.deepEqual(left, [], 'no index, no temporary copy (on the code before: an index of invalid JSON), no lock');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an index of version 2 (one JSON document) is read, and the next save writes version 3, a line per file', async () => {
  const file = path.join(work, 'v2-upgrade.json');
  const id = { size: 1, mtimeMs: 2.5, ctimeMs: 3, ino: 4, dev: 5 };
  await writeFile(file, JSON.stringify({ version: 2, files: { '/old': { ...id, sums: { md5: 'OLD' } } } }));
  const index = await HashIndex.load(file);
  assert.equal(index.get('/old', id, 'md5'), 'OLD', 'kept across the upgrade: a big tree is not hashed again');
  index.set('/new', id, 'md5', 'NEW');
  await index.save();
  const saved = await indexFiles(file);
  assert.deepEqual(Object.keys(saved).sort(), ['/new', '/old']);
  assert.equal(saved['/old']!.sums.md5, 'OLD');
});

test('a damaged line of an index (garbage, wrong shape, cut short, overlong) is dropped alone; the lines after it are read', async () => {
  const file = path.join(work, 'damaged.json');
  const id = { size: 1, mtimeMs: 2, ctimeMs: 3, ino: 4, dev: 5 };
  const line = (name: string, sum: string): string => JSON.stringify([name, { ...id, sums: { md5: sum } }]);
  await writeFile(file, [
    '{"version":3}',
    line('/a', 'A'),
    'garbage',
    JSON.stringify({ '/b': { ...id, sums: { md5: 'B' } } }), // the shape of version 2's entries, not a line's
    line('/c', 'C').slice(0, -10),
    `["/long",${' '.repeat(65 << 20)}0]`, // past the longest line read (64 MiB): skipped, not gathered
    line('/d', 'D'),
    line('/e', 'E').slice(0, -1), // the last line cut short, no newline
  ].join('\n'));
  const index = await HashIndex.load(file);
  assert.equal(index.get('/a', id, 'md5'), 'A');
  assert.equal(index.get('/d', id, 'md5'), 'D', 'read past the damaged lines');
  for (const name of ['/b', '/c', '/long', '/e']) assert.equal(index.previous(name, 'md5'), undefined, name);
});

test('loading an index of 150,000 files takes less than twice its size in memory (parsed a line at a time: 2.7 times; as one JSON document: 5.7 times)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-index-big-'));
  const module = new URL('../../src/sources/hash-index.ts', import.meta.url).href;
  const file = path.join(dir, 'hash-index.json');
  /** The source text of file i's identity, `i` being source text too. */
  const id = (i: string): string => `{ size: ${i}, mtimeMs: ${i} + 0.5, ctimeMs: ${i} + 0.25, ino: ${i}, dev: 2049 }`;
  const name = (i: string): string => `'/srv/mirror/debian/pool/main/p/pkg' + ${i} + '/pkg' + ${i} + '_1.0-1_amd64.deb'`;
  const make = `
    const { HashIndex } = await import(${JSON.stringify(module)});
    const index = await HashIndex.load(${JSON.stringify(file)});
    for (let i = 0; i < 150000; i++) index.setValues(${name('i')}, ${id('i')},
      [['md5', 'M'.repeat(21) + i], ['md5@0+1024', 'B'.repeat(21) + i], ['rsync64@1024', 'R'.repeat(10) + i], ['sha256', 'S'.repeat(42) + i]]);
    await index.save();`;
  /** Loads the index at `at`; prints the checksum of the last file and the process's peak RSS in bytes. */
  const load = (at: string): string => `
    const { readFileSync } = await import('node:fs');
    const { HashIndex } = await import(${JSON.stringify(module)});
    const index = await HashIndex.load(${JSON.stringify(at)});
    const peak = Number(/VmHWM:\\s*(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
    console.log(index.get(${name('149999')}, ${id('149999')}, 'md5') + ' ' + peak);`;
  const node = (script: string) => spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  try {
    const made = node(make);
    assert.equal(made.status, 0, made.stderr);
    const size = (await stat(file)).size;
    const [, none] = node(load(path.join(dir, 'none.json'))).stdout.trim().split(' ');
    const r = node(load(file));
    assert.equal(r.status, 0, r.stderr.slice(0, 2000));
    const [sum, peak] = r.stdout.trim().split(' ');
    assert.equal(sum, `${'M'.repeat(21)}149999`);
    const grown = Number(peak) - Number(none);
    assert.ok(grown < 2 * size, `loading ${size} bytes of index took ${grown} bytes more at its peak (${(grown / size).toFixed(1)} times its size)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("an index of versions before is read by the session index and by make-template's, each taking its own entries, and never written", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-index-split-'));
  try {
    const id = { size: 1, mtimeMs: 2, ctimeMs: 3, ino: 4, dev: 5 };
    const candidate = { ...id, sums: { 'rsync64@1024': 'R', md5: 'M', sha256: 'S', zeros: '0' } }; // make-template's
    const part = { ...id, sums: { md5: 'PART' } }; // a session's
    const legacy = JSON.stringify({ version: 2, files: { '/tree/candidate': candidate, '/tree/part': part } });
    await writeFile(path.join(dir, LEGACY_INDEX), legacy);
    const session = await loadSessionIndex(dir);
    assert.equal(session.get('/tree/part', id, 'md5'), 'PART');
    assert.equal(session.previous('/tree/candidate', 'md5'), undefined, "make-template's entries are not a session's");
    await session.save(); // nothing changed: written all the same (else every session read the old file again)
    assert.deepEqual(Object.keys(await indexFiles(path.join(dir, SESSION_INDEX))), ['/tree/part']);
    const own = await loadMakeTemplateIndex(dir);
    assert.equal(own.getValue('/tree/candidate', id, 'rsync64@1024'), 'R', 'a second make-template reads no file again after the upgrade');
    assert.equal(own.previous('/tree/part', 'md5'), undefined);
    own.set('/tree/other', id, 'md5', 'O');
    await own.save();
    assert.deepEqual(Object.keys(await indexFiles(path.join(dir, MAKE_TEMPLATE_INDEX))).sort(), ['/tree/candidate', '/tree/other']);
    assert.equal(await readFile(path.join(dir, LEGACY_INDEX), 'utf8'), legacy, 'left as it was, for a version before sharing the folder');
    // Once the new file is there, the old one is not read again: an entry forgotten since does not come back.
    const again = await loadSessionIndex(dir);
    again.forget('/tree/part');
    await again.save();
    assert.equal((await loadSessionIndex(dir)).previous('/tree/part', 'md5'), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a path of brackets is kept; an entry denser in objects than ours, or on a line past 64 MiB, is not read', async () => {
  const file = path.join(work, 'brackets.jsonl');
  const id = { size: 1, mtimeMs: 2, ctimeMs: 3, ino: 4, dev: 5 };
  const music = `/music/${'[x]'.repeat(40)}/track.flac`;
  const index = await HashIndex.load(file);
  index.set(music, id, 'md5', 'BRACKETS');
  await index.save();
  assert.equal((await HashIndex.load(file)).get(music, id, 'md5'), 'BRACKETS', 'dropped at every load, so hashed again at every run');
  const entry = (sum: string, extra = ''): string => `{"size":1,"mtimeMs":2,"ctimeMs":3,"ino":4,"dev":5,"sums":{"md5":"${sum}"}${extra}}`;
  await writeFile(file, [
    '{"version":3}',
    `["/dense",${entry('DENSE', `,"pad":[${Array.from({ length: 5000 }, () => '{}').join(',')}]`)}]`,
    `["/long",${' '.repeat(65 << 20)}${entry('LONG')}]`, // well formed, but past the longest line read: skipped, not gathered
    `["/plain",${entry('PLAIN')}]`,
    '',
  ].join('\n'));
  const read = await HashIndex.load(file);
  assert.equal(read.get('/plain', id, 'md5'), 'PLAIN');
  assert.equal(read.previous('/dense', 'md5'), undefined, 'not parsed');
  assert.equal(read.previous('/long', 'md5'), undefined, 'not read');
});

test('two sessions that both start from the old file: an entry one forgot does not come back with the other\'s first save', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-index-legacy2-'));
  try {
    const id = { size: 1, mtimeMs: 2, ctimeMs: 3, ino: 4, dev: 5 };
    await writeFile(path.join(dir, LEGACY_INDEX), JSON.stringify({ version: 2, files: { '/tree/bad': { ...id, sums: { md5: 'LIE' } }, '/tree/ok': { ...id, sums: { md5: 'OK' } } } }));
    const a = await loadSessionIndex(dir);
    const b = await loadSessionIndex(dir);
    b.forget('/tree/bad'); // its bytes did not match
    await b.save();
    a.set('/tree/new', id, 'md5', 'NEW');
    await a.save();
    const next = await loadSessionIndex(dir);
    assert.equal(next.previous('/tree/bad', 'md5'), undefined, 'the wrong checksum stays forgotten');
    assert.equal(next.get('/tree/ok', id, 'md5'), 'OK');
    assert.equal(next.get('/tree/new', id, 'md5'), 'NEW');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an old file of make-template\'s entries alone is read by one session only: its save makes the new file, empty', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-index-legacy3-'));
  try {
    const id = { size: 1, mtimeMs: 2, ctimeMs: 3, ino: 4, dev: 5 };
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
    const deadSave = `${LEGACY_INDEX}.${ownerTag(deadPid)}-0a1b2c3d.tmp`; // left by a version before, killed while saving
    await writeFile(path.join(dir, deadSave), '{}');
    await writeFile(path.join(dir, LEGACY_INDEX), JSON.stringify({ version: 2, files: { '/tree/candidate': { ...id, sums: { 'rsync64@1024': 'R', md5: 'M' } } } }));
    await (await loadSessionIndex(dir)).save();
    assert.deepEqual(await indexFiles(path.join(dir, SESSION_INDEX)), {});
    // The old file is not read again (an entry put into it now is not seen).
    await writeFile(path.join(dir, LEGACY_INDEX), JSON.stringify({ version: 2, files: { '/tree/part': { ...id, sums: { md5: 'P' } } } }));
    assert.equal((await loadSessionIndex(dir)).previous('/tree/part', 'md5'), undefined);
    assert.ok(!(await readdir(dir)).includes(deadSave), "the old index's dead temporary copy is removed");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a save that fails keeps its changes for the next one', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-index-retry-'));
  try {
    const blocked = path.join(dir, 'sub');
    await writeFile(blocked, 'a file where the index folder goes');
    const index = await HashIndex.load(path.join(blocked, 'index.jsonl'));
    const id = { size: 1, mtimeMs: 2, ctimeMs: 3, ino: 4, dev: 5 };
    index.set('/a', id, 'md5', 'A');
    await assert.rejects(index.save()); // (ENOTDIR)
    await rm(blocked);
    await index.save();
    assert.equal((await HashIndex.load(path.join(blocked, 'index.jsonl'))).get('/a', id, 'md5'), 'A', 'the retry wrote nothing before');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('two processes saving one index at once lose nothing of each other\'s (the saves take turns)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-index-turns-'));
  const module = new URL('../../src/sources/hash-index.ts', import.meta.url).href;
  const file = path.join(dir, SESSION_INDEX);
  const go = path.join(dir, 'go');
  // Each process records its own files and saves three times; both start their saves when `go` appears. Without turns
  // both read the index before either renamed its copy over it, and the later rename dropped the other's entries.
  const script = (who: string): string => `
    import { existsSync } from 'node:fs';
    const { HashIndex } = await import(${JSON.stringify(module)});
    const index = await HashIndex.load(${JSON.stringify(file)});
    while (!existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 1));
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 20000; i++) index.set('/${who}/' + round + '/' + i, { size: i, mtimeMs: i, ctimeMs: i, ino: i, dev: 1 }, 'md5', '${who}' + i);
      await index.save();
    }`;
  try {
    const both = ['a', 'b'].map((who) => run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(who)], { timeout: 60_000 }));
    await new Promise((r) => setTimeout(r, 1500)); // both loaded and waiting
    await writeFile(go, '');
    await Promise.all(both);
    const saved = await indexFiles(file);
    for (const who of ['a', 'b']) {
      for (let round = 0; round < 3; round++) assert.equal(saved[`/${who}/${round}/19999`]?.sums.md5, `${who}19999`, `${who}'s round ${round}`);
    }
    assert.equal(Object.keys(saved).length, 120_000);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a loaded index reads its entries from the file it loaded, also once another process has saved over it', async () => {
  const file = path.join(work, 'held.jsonl');
  const id = { size: 1, mtimeMs: 2.5, ctimeMs: 3, ino: 4, dev: 5 };
  const first = await HashIndex.load(file);
  for (let i = 0; i < 3000; i++) first.set(`/held/${i}`, id, 'md5', `S${i}`);
  await first.save();
  const a = await HashIndex.load(file);
  const b = await HashIndex.load(file);
  b.forget('/held/7');
  b.set('/held/8', id, 'md5', 'CHANGED');
  await b.save(); // renamed over the file `a` loaded
  for (const i of [0, 7, 8, 1500, 2999]) assert.equal(a.get(`/held/${i}`, id, 'md5'), `S${i}`, `a's /held/${i}, as it loaded it`);
  a.set('/held/9', id, 'md5', 'NINE');
  await a.save(); // merged into b's file: b's changes stay
  const c = await HashIndex.load(file);
  assert.equal(c.previous('/held/7', 'md5'), undefined);
  assert.equal(c.get('/held/8', id, 'md5'), 'CHANGED');
  assert.equal(c.get('/held/9', id, 'md5'), 'NINE');
  assert.equal(c.get('/held/2999', id, 'md5'), 'S2999');
  assert.equal(a.get('/held/8', id, 'md5'), 'CHANGED', "after its save, a reads the file it wrote, with b's changes");
});

test('an index file written over in place after the load (by hand, by another tool) gives misses, not other files\' checksums', async () => {
  const file = path.join(work, 'in-place.jsonl');
  const id = { size: 1, mtimeMs: 2, ctimeMs: 3, ino: 4, dev: 5 };
  const made = await HashIndex.load(file);
  for (const name of ['/p/a', '/p/b', '/p/c']) made.set(name, id, 'md5', `SUM${name}`);
  await made.save();
  const index = await HashIndex.load(file);
  const text = await readFile(file, 'utf8');
  // The lines in another order: at each path's offset there is now another path's line, or a line's middle.
  const [header, ...lines] = text.trimEnd().split('\n');
  await writeFile(file, [header, ...lines.reverse(), ''].join('\n')); // (in place: the same inode)
  for (const name of ['/p/a', '/p/c']) assert.equal(index.get(name, id, 'md5'), undefined, `${name}: another path's line is where its was`);
  assert.equal(index.get('/p/b', id, 'md5'), 'SUM/p/b', 'its own line, where it was');
  index.set('/p/d', id, 'md5', 'D');
  await index.save(); // what the file holds now, and ours
  assert.deepEqual(Object.keys(await indexFiles(file)), ['/p/c', '/p/b', '/p/a', '/p/d']);
  // A file found wrong is forgotten for good, even when its line could not be read.
  const again = await HashIndex.load(file);
  const [head, ...rest] = (await readFile(file, 'utf8')).trimEnd().split('\n');
  await writeFile(file, [head, ...rest.reverse(), ''].join('\n')); // /p/a's line is not where it was
  again.forget('/p/a');
  again.forget('/p/x'); // held by no one: nothing to drop
  await again.save();
  assert.equal(again.previous('/p/a', 'md5'), undefined, 'not back after the save (it was, on the first version of this change)');
  assert.equal((await HashIndex.load(file)).previous('/p/a', 'md5'), undefined, 'nor for another process');
  assert.equal((await HashIndex.load(file)).get('/p/b', id, 'md5'), 'SUM/p/b');
});

test('an index file that cannot be read after the load (ESTALE on NFS, EIO) gives misses: lookups, sets and forgets do not throw', async () => {
  const file = path.join(work, 'read-error.jsonl');
  const id = { size: 1, mtimeMs: 2, ctimeMs: 3, ino: 4, dev: 5 };
  const made = await HashIndex.load(file);
  made.set('/a', id, 'md5', 'A');
  made.set('/b', id, 'md5', 'B');
  await made.save();
  const index = await HashIndex.load(file);
  // The kernel's error for a file another NFS client's rename removed, injected: no local file system gives it at will.
  const real = fs.readSync;
  (fs as { readSync: unknown }).readSync = () => {
    throw Object.assign(new Error('ESTALE: stale file handle, read'), { code: 'ESTALE' });
  };
  syncBuiltinESMExports();
  try {
    assert.equal(index.get('/a', id, 'md5'), undefined);
    index.set('/a', id, 'sha256', 'SHA');
    index.forget('/b');
  } finally {
    (fs as { readSync: unknown }).readSync = real;
    syncBuiltinESMExports();
  }
  assert.equal(index.get('/a', id, 'sha256'), 'SHA');
  await index.save();
  const saved = await indexFiles(file);
  assert.deepEqual(Object.keys(saved), ['/a']);
  assert.deepEqual(saved['/a']!.sums, { sha256: 'SHA' }, 'what could not be read is not invented');
});

test('values set to be made later are made when saved, and are seen by a lookup before', async () => {
  const file = path.join(work, 'later.jsonl');
  const id = { size: 10, mtimeMs: 2, ctimeMs: 3, ino: 4, dev: 5 };
  const index = await HashIndex.load(file);
  let made = 0;
  const later = (identity: typeof id, values: Array<[string, string]>): LaterValues =>
    new (class extends LaterValues {
      readonly identity = identity;
      values(): Array<[string, string]> {
        made++;
        return values;
      }
    })();
  index.setValuesLater('/later', later(id, [['md5', 'M'], ['rsync64@1024', 'R']]));
  assert.equal(index.getValue('/later', id, 'rsync64@1024'), 'R');
  assert.equal(index.get('/later', { ...id, ino: 9 }, 'md5'), undefined, 'the identity rule holds');
  await index.save();
  const saved = await indexFiles(file);
  assert.deepEqual(saved['/later']!.sums, { md5: 'M', 'rsync64@1024': 'R' });
  assert.equal(saved['/later']!.size, 10);
  const before = made;
  assert.equal(index.get('/later', id, 'md5'), 'M', 'read back from the file once saved');
  assert.equal(made, before, 'not made again once saved');
  // Regions of one file (the files inside an old disc image) each add theirs; another identity starts again.
  index.setValuesLater('/disc', later(id, [['md5@0+5', 'FIRST']]));
  index.setValuesLater('/disc', later(id, [['md5@5+5', 'SECOND']]));
  index.setValuesLater('/disc', later(id, [['md5@10+5', 'THIRD']]));
  assert.equal(index.get('/disc', id, 'md5', 10, 5), 'THIRD');
  assert.equal(index.get('/disc', id, 'md5', 0, 5), 'FIRST', "the second region's values did not replace the first's");
  index.setValuesLater('/disc', later({ ...id, ino: 99 }, [['md5@5+5', 'NEW']]));
  assert.equal(index.previous('/disc', 'md5', 0, 5), undefined, "the old file's values went with it");
  await index.save();
  assert.deepEqual((await indexFiles(file))['/disc']!.sums, { 'md5@5+5': 'NEW' });
});

test('an old disc image\'s files, each looked up and then recorded under the one image path, make their values once each', async () => {
  const index = await HashIndex.load(path.join(work, 'regions.jsonl'));
  const id = { size: 1 << 30, mtimeMs: 2, ctimeMs: 3, ino: 4, dev: 5 };
  let made = 0;
  const region = (i: number): LaterValues =>
    new (class extends LaterValues {
      readonly identity = id;
      values(): Array<[string, string]> {
        made++;
        return [[`md5@${i * 10}+10`, `R${i}`]];
      }
    })();
  // As make-template does: a file's lookup (it is not known yet), then its record.
  for (let i = 0; i < 2000; i++) {
    assert.equal(index.get('/old.iso', id, 'md5', i * 10, 10), undefined);
    index.setValuesLater('/old.iso', region(i));
  }
  assert.equal(index.get('/old.iso', id, 'md5', 19990, 10), 'R1999');
  assert.equal(index.get('/old.iso', id, 'md5', 0, 10), 'R0');
  assert.ok(made <= 2 * 2000, `values made ${made} times for 2,000 regions (made again at every lookup: ~2 million)`);
});

test('entries read where they lie: in the file\'s order, backwards and at random, lines from 100 bytes to 300 KiB, the last without a newline', async () => {
  const file = path.join(work, 'lookups.jsonl');
  const id = { size: 1, mtimeMs: 2, ctimeMs: 3, ino: 4, dev: 5 };
  const made = await HashIndex.load(file);
  const sums = new Map<string, string>();
  for (let i = 0; i < 400; i++) {
    const long = i % 37 === 5 ? 300_000 : i % 11 === 3 ? 70_000 : i % 5 === 1 ? 3000 : 20; // (around the 2 KiB and 64 KiB reads)
    const sum = `${i}-${'x'.repeat(long)}`;
    sums.set(`/l/${i}`, sum);
    made.set(`/l/${i}`, id, 'md5', sum);
  }
  await made.save();
  await writeFile(file, (await readFile(file, 'utf8')).replace(/\n$/, '')); // the last line without its newline
  const names = [...sums.keys()];
  const shuffled = [...names].sort(() => Math.random() - 0.5);
  for (const order of [names, [...names].reverse(), shuffled]) {
    const index = await HashIndex.load(file);
    for (const name of order) assert.equal(index.get(name, id, 'md5'), sums.get(name), name);
  }
});
