// fuse-native's own unmount ran `fusermount -uz "MNT"` through a shell (src/fuse/fuse-class.ts replaces it): a
// mountpoint's name is an argument, never shell text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Fuse } from '../../src/fuse/fuse-class.js';

test("a mountpoint's name with $(…) and backquotes in it is not run by a shell when fuse-native unmounts", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'jigdofs-unmount-'));
  try {
    const marks = [path.join(dir, 'dollar'), path.join(dir, 'backquote')];
    for (const mnt of [`${dir}/m$(touch ${marks[0]})`, `${dir}/m\`touch ${marks[1]}\``]) {
      const err = await new Promise<Error | null>((resolve) => Fuse.unmount(mnt, resolve));
      assert.ok(err, 'nothing is mounted there: fusermount fails');
    }
    for (const mark of marks) assert.equal(existsSync(mark), false, `${path.basename(mark)}: the name was run as a command`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
