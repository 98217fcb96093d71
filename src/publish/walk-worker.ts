/**
 * The walk worker: make-template's folder arguments walked as jigdo-file walks them (candidates.ts says the order),
 * with synchronous lstat and readdir on this thread. On the main thread each lstat was a promise and a round trip
 * through libuv's pool: over 100,000 files, 2.3 s of its CPU and 5 s of waiting, before any file was read. A folder
 * that hangs (a dead NFS server) holds this thread only; the main thread still answers signals.
 */
import { lstatSync, opendirSync, statSync, type Dir, type Dirent, type Stats } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { decodeBytes, fsPath, shown } from '../format/byte-string.js';
import { errorMessage } from '../format/errors.js';
import { WALK_BATCH, type WalkArg, type WalkBatch, type WalkReply } from './walk-protocol.js';

function join(dir: string, name: string): string {
  return dir === '' || dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

class SyncWalk {
  private readonly seen = new Set<string>();
  private readonly links: Array<{ arg: number; location: string; leaf: string }> = [];
  private readonly dirs = new Set<string>();
  private batch = SyncWalk.emptyBatch();

  private static emptyBatch(): WalkBatch {
    return { op: 'found', args: [], leaves: [], ids: [] };
  }

  flush(): void {
    if (this.batch.leaves.length === 0) return;
    parentPort!.postMessage(this.batch satisfies WalkReply);
    this.batch = SyncWalk.emptyBatch();
  }

  private add(arg: number, location: string, leaf: string, st: Stats): void {
    const path = location + leaf;
    if (this.seen.has(path)) return;
    this.seen.add(path);
    this.batch.args.push(arg);
    this.batch.leaves.push(leaf);
    this.batch.ids.push(st.size, st.mtimeMs, st.ctimeMs, st.ino, st.dev);
    if (this.batch.leaves.length >= WALK_BATCH) this.flush();
  }

  visit(arg: number, location: string, leaf: string, follow: boolean): void {
    const path = location + leaf;
    let st: Stats;
    try {
      st = follow ? statSync(fsPath(path)) : lstatSync(fsPath(path));
    } catch (err) {
      warn(`${shown(path)}: ${errorMessage(err)} (ignored)`);
      return;
    }
    if (st.isSymbolicLink()) {
      this.links.push({ arg, location, leaf });
    } else if (st.isFile()) {
      this.add(arg, location, leaf, st);
    } else if (st.isDirectory()) {
      const key = `${st.dev}:${st.ino}`;
      if (this.dirs.has(key)) return; // a loop of links
      this.dirs.add(key);
      this.directory(arg, location, leaf);
    }
  }

  /** In readdir order, as jigdo-file lists a folder (not readdir(3)'s sorted list: libuv sorts scandir's names). */
  private directory(arg: number, location: string, leaf: string): void {
    let dir;
    try {
      dir = opendirSync(fsPath(location + leaf) as string, { encoding: 'buffer' as BufferEncoding });
    } catch (err) {
      warn(`${shown(location + leaf)}: ${errorMessage(err)} (ignored)`);
      return;
    }
    try {
      for (let entry = this.next(dir, location + leaf); entry; entry = this.next(dir, location + leaf)) {
        const name = decodeBytes(entry.name as unknown as Buffer);
        this.visit(arg, location, leaf === '' ? name : join(leaf, name), false);
      }
    } finally {
      dir.closeSync();
    }
  }

  /**
   * The folder's next entry, or null at its end, or when it cannot be read on: warned about, and the rest of it ignored
   * as a folder that cannot be opened is (`/proc/1/map_files` opens and then refuses its list: the run ended there).
   */
  private next(dir: Dir, path: string): Dirent | null {
    try {
      return dir.readSync();
    } catch (err) {
      warn(`${shown(path)}: ${errorMessage(err)} (the rest of it ignored)`);
      return null;
    }
  }

  /** Symbolic links come after everything else, as jigdo-file's RecurseDir takes them. */
  followLinks(): void {
    while (this.links.length > 0) {
      const { arg, location, leaf } = this.links.shift()!;
      this.visit(arg, location, leaf, true);
    }
  }
}

function warn(line: string): void {
  parentPort!.postMessage({ op: 'warn', line } satisfies WalkReply);
}

parentPort!.once('message', (args: Array<WalkArg | null>) => {
  try {
    const walk = new SyncWalk();
    args.forEach((a, i) => {
      if (a === null) {
        walk.flush();
        parentPort!.postMessage({ op: 'disc', arg: i } satisfies WalkReply);
      } else {
        walk.visit(i, a.location, a.leaf, true); // a link named as an argument is followed where it stands
      }
    });
    walk.followLinks();
    walk.flush();
    parentPort!.postMessage({ op: 'done' } satisfies WalkReply);
  } catch (err) {
    parentPort!.postMessage({ op: 'error', error: errorMessage(err) } satisfies WalkReply);
  }
});
