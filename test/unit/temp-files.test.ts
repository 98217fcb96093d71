/** A resumable writer's file (cache/temp-files.ts openResumeFile): which earlier writer's bytes it goes on with, and how it takes them. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openResumeFile } from '../../src/cache/temp-files.js';
import { MadeDirs } from '../../src/util/make-dirs.js';
import { ownerTag } from '../../src/util/pid.js';

let work: string;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-temp-files-'));
});
after(() => rm(work, { recursive: true, force: true }));

const NAME = 'templates-md5-0123456789abcdef0123456789abcdef';
/** A tag of this host whose process cannot exist (past the kernel's highest pid): its owner is dead. */
const dead = (n: number): string => ownerTag(4_194_305 + n);
/** A tag of this host whose process runs (init). */
const live = ownerTag(1);
/** A tag of another host (or boot, or pid namespace): its owner cannot be judged. */
const foreign = ownerTag(4_194_399).replace(/^[0-9a-f]{8}/, (h) => (h === '00000000' ? '11111111' : '00000000'));

/** A folder holding `files` (owner tag → length in bytes, each byte its length's low byte). */
async function folder(name: string, files: Record<string, number>): Promise<string> {
  const dir = path.join(work, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const [owner, n] of Object.entries(files)) await writeFile(path.join(dir, `resume-${NAME}.${owner}`), Buffer.alloc(n, n & 0xff), { mode: 0o644 });
  return dir;
}

/** Opens the resume file in `dir`; its bytes, and the names left in `dir`. */
async function openIn(dir: string): Promise<{ bytes: number; names: string[] }> {
  const f = await openResumeFile(dir, NAME, new MadeDirs());
  try {
    assert.equal(path.basename(f.file), `resume-${NAME}.${ownerTag()}`);
    assert.equal((await f.fh.stat()).mode & 0o777, 0o600, 'private');
    return { bytes: (await f.fh.stat()).size, names: (await readdir(dir)).sort() };
  } finally {
    await f.fh.close();
  }
}
const mine = `resume-${NAME}.${ownerTag()}`;

test('a dead run\'s file is taken over (the longest), the other dead ones go; a live writer\'s and another host\'s stay', async () => {
  const dir = await folder('dead', { [dead(1)]: 50, [dead(2)]: 200, [dead(3)]: 120, [live]: 500, [foreign]: 400 });
  const r = await openIn(dir);
  assert.equal(r.bytes, 200, 'the longest of the dead, not a longer live or foreign one');
  assert.deepEqual(r.names, [`resume-${NAME}.${foreign}`, `resume-${NAME}.${live}`, mine].sort());
});

test('this process\'s own file is kept, unless a dead run\'s is longer', async () => {
  let dir = await folder('own-longer', { [ownerTag()]: 300, [dead(1)]: 200 });
  assert.deepEqual(await openIn(dir), { bytes: 300, names: [mine] });
  dir = await folder('dead-longer', { [ownerTag()]: 100, [dead(1)]: 200, [dead(2)]: 150 });
  assert.deepEqual(await openIn(dir), { bytes: 200, names: [mine] }, 'on 8892928 the shorter own file was kept and the longer ones removed');
});

test('with no dead run\'s file, the longest other is copied (a live writer may still write it: never shared), and left as it was', async () => {
  const dir = await folder('copy', { [live]: 100, [foreign]: 300 });
  const before = await stat(path.join(dir, `resume-${NAME}.${foreign}`));
  const r = await openIn(dir);
  assert.equal(r.bytes, 300);
  assert.deepEqual(r.names, [`resume-${NAME}.${foreign}`, `resume-${NAME}.${live}`, mine].sort());
  const after = await stat(path.join(dir, `resume-${NAME}.${foreign}`));
  assert.notEqual(after.ino, (await stat(path.join(dir, mine))).ino, 'a copy, not a link');
  assert.equal(after.mode, before.mode);
  assert.deepEqual(await readFile(path.join(dir, mine)), Buffer.alloc(300, 300 & 0xff));
});

test('a symlink at our own name is neither written through by the copy (its target is not made) nor opened', async () => {
  const dir = await folder('symlink', { [foreign]: 300 });
  const target = path.join(work, 'symlink-target');
  await symlink(target, path.join(dir, mine));
  await assert.rejects(openResumeFile(dir, NAME, new MadeDirs()), { code: 'ELOOP' });
  assert.equal(existsSync(target), false, 'on 8892928 the copy made the link\'s target and filled it');
  assert.ok((await lstat(path.join(dir, mine))).isSymbolicLink());
});

test('a dead run\'s file is cut to the length it recorded as it ended (its fetch threads wrote past its cut); the record goes', async () => {
  const dir = await folder('kept', { [dead(1)]: 5000, [dead(2)]: 3000 });
  // dead(1) recorded 1000 bytes known written, then late writes took its file to 5000: dead(2)'s 3000 are the longer.
  await writeFile(path.join(dir, `resume-${NAME}.${dead(1)}.kept`), '1000');
  assert.deepEqual(await openIn(dir), { bytes: 3000, names: [mine] });
  const alone = await folder('kept-alone', { [dead(1)]: 5000 });
  await writeFile(path.join(alone, `resume-${NAME}.${dead(1)}.kept`), '1000');
  assert.deepEqual(await openIn(alone), { bytes: 1000, names: [mine] });
  // A record that is no number keeps nothing of the file.
  const bad = await folder('kept-bad', { [dead(1)]: 5000 });
  await writeFile(path.join(bad, `resume-${NAME}.${dead(1)}.kept`), 'x');
  assert.deepEqual(await openIn(bad), { bytes: 0, names: [mine] });
});

test('a live run\'s file that is copied is cut to its record too (a run ending now); its record stays its own', async () => {
  const dir = await folder('kept-live', { [live]: 5000 });
  await writeFile(path.join(dir, `resume-${NAME}.${live}.kept`), '1200');
  const r = await openIn(dir);
  assert.equal(r.bytes, 1200);
  assert.deepEqual(r.names, [`resume-${NAME}.${live}`, `resume-${NAME}.${live}.kept`, mine].sort());
});
