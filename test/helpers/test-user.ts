/**
 * A real unprivileged user for the tests that must also pass as a regular user (FUSE exists so that users
 * can mount): made with useradd for this test process (`jigdofs-t<pid>`, its own group, a private home), and
 * removed when the process exits. Programs run as it through `setpriv --reuid --regid --init-groups`.
 *
 * What the user needs and a test machine may not give, opened for the run and put back at exit:
 * - /dev/fuse: a normal Debian system has it 0666; these machines have it 0600 (root only);
 * - the repository (bin/, dist/, node_modules) and the fixture folder: each folder on the way gets o+x,
 *   the fixture folder o+rx (it is made by mkdtemp, 0700);
 * and what it needs from the system is checked with a clear message: fusermount3 setuid root (fuse3's
 * postinst sets it, unless a dpkg-statoverride says otherwise).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (cli.ts has it too, but imports this file). */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  /** Its home, 0700 and its own; the cache defaults to `<home>/.cache/jigdofs`. */
  home: string;
}

/** A program and its arguments that run `cmd args` as `user` (all ids and groups switched: a real user). */
export function asUser(user: TestUser, cmd: string, args: string[]): [string, string[]] {
  return ['setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', cmd, ...args]];
}

/** Modes changed for the run, put back at exit (last changed first). */
const restore: Array<() => void> = [];
let made: TestUser | undefined;

function atExit(): void {
  for (const undo of restore.reverse()) {
    try {
      undo();
    } catch (err) {
      process.stderr.write(`test-user: could not restore: ${(err as Error).message}\n`);
    }
  }
  restore.length = 0;
}

/** Sets `bits` on `p`'s mode for the run; put back at exit unless someone changed it since. */
function addMode(p: string, bits: number): void {
  const before = statSync(p).mode & 0o7777;
  if ((before & bits) === bits) return;
  const during = before | bits;
  chmodSync(p, during);
  restore.push(() => {
    if ((statSync(p).mode & 0o7777) === during) chmodSync(p, before);
  });
}

/** `p` readable by others (o+rx for a folder, o+r for a file) and every folder above it passable (o+x). */
export function openForOthers(p: string): void {
  const real = realpathSync(p);
  const dirs: string[] = [];
  for (let d = path.dirname(real); d !== path.dirname(d); d = path.dirname(d)) dirs.unshift(d);
  for (const d of dirs) addMode(d, 0o001);
  addMode(real, statSync(real).isDirectory() ? 0o005 : 0o004);
}

/** fusermount3 must be setuid root, or no user can mount. */
function checkFusermount(): void {
  const bin = realpathSync(execFileSync('sh', ['-c', 'command -v fusermount3 || command -v fusermount'], { encoding: 'utf8' }).trim());
  const st = statSync(bin);
  if (st.uid !== 0 || (st.mode & 0o4000) === 0) {
    throw new Error(`${bin} is not setuid root (mode ${(st.mode & 0o7777).toString(8)}): users cannot mount; apt-get install --reinstall fuse3`);
  }
}

/** Makes (once per process) the unprivileged user and opens what it needs; the test process must be root. */
export function testUser(): TestUser {
  if (made) return made;
  if (process.getuid?.() !== 0) throw new Error('the regular-user tests make a user and need root');
  checkFusermount();
  process.once('exit', atExit);
  const name = `jigdofs-t${process.pid}`;
  const home = mkdtempSync(path.join(tmpdir(), 'jigdofs-user-home-'));
  restore.push(() => rmSync(home, { recursive: true, force: true }));
  execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', home, '--shell', '/usr/sbin/nologin', name]);
  restore.push(() => execFileSync('userdel', ['--force', name], { stdio: 'ignore' }));
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }));
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }));
  for (const left of [`jigdofs-${uid}`, `tsx-${uid}`]) restore.push(() => rmSync(path.join(tmpdir(), left), { recursive: true, force: true })); // control sockets without XDG_RUNTIME_DIR; tsx's cache (fs-agent)
  chownSync(home, uid, gid);
  chmodSync(home, 0o700);
  addMode('/dev/fuse', 0o066);
  openForOthers(ROOT);
  made = { name, uid, gid, home };
  return made;
}

/** Makes a folder made by the tests (and what is in it) the user's own. */
export function giveTo(user: TestUser, p: string): void {
  execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, p]);
}
