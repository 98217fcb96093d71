// fuse/open-files.ts: which opens of a mount count (a detached mount is served until they are all released), and
// that the daemon's own opens of its image (the drops behind a stream) never do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import { isOwnOpen, OpenFiles, OWN_OPEN_FLAGS, watchConnection } from '../../src/fuse/open-files.js';

const O_LARGEFILE = 0o100000;

test("the daemon's own opens are told by O_NONBLOCK and O_DSYNC together; readers' opens are not", () => {
  assert.equal(OWN_OPEN_FLAGS, constants.O_NONBLOCK | constants.O_DSYNC);
  assert.ok(isOwnOpen(OWN_OPEN_FLAGS));
  assert.ok(isOwnOpen(OWN_OPEN_FLAGS | O_LARGEFILE));
  for (const flags of [constants.O_RDONLY, constants.O_NONBLOCK, constants.O_DSYNC, O_LARGEFILE | constants.O_NOATIME, constants.O_SYNC | constants.O_NONBLOCK]) {
    assert.equal(isOwnOpen(flags), false, `flags 0${flags.toString(8)}`);
  }
});

test('files count from open to release; own opens never; whenNoneOpen resolves at the last release', async () => {
  const files = new OpenFiles();
  await files.whenNoneOpen(); // nothing open: at once
  files.opened(1, constants.O_RDONLY);
  files.opened(2, OWN_OPEN_FLAGS); // a drop's open
  files.opened(3, 0); // a folder
  assert.equal(files.count, 2);
  let none = false;
  void files.whenNoneOpen().then(() => (none = true));
  files.released(2);
  files.released(99); // (never seen: changes nothing)
  files.released(1);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(none, false);
  files.released(3);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(none, true);
  assert.equal(files.count, 0);
});

test('watchConnection never calls back for no descriptors, and does once a descriptor is no longer /dev/fuse', async () => {
  let ended = 0;
  watchConnection([], () => ended++, 10)();
  // A descriptor number this process does not have open: not /dev/fuse.
  const stop = watchConnection([1_000_000], () => ended++, 10);
  await new Promise((resolve) => setTimeout(resolve, 100));
  stop();
  assert.equal(ended, 1);
});
