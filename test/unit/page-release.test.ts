/**
 * PageRelease (cache/page-release.ts): files never synced (make-image's unhashed downloads it will remove) leave the
 * page cache only once the kernel has had time to write them back, and a process that ends first drops none of them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PageRelease } from '../../src/cache/page-release.js';

function release(): { pages: PageRelease; dropped: string[][] } {
  const dropped: string[][] = [];
  const pages = new PageRelease(async (paths) => void dropped.push(paths), () => Promise.resolve(), (p) => p);
  return { pages, dropped };
}

test('leaveLater drops only after 40 s, when the kernel has written the pages back', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { pages, dropped } = release();
  pages.leaveLater(['/c/a.unverified']);
  t.mock.timers.tick(39_999);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(dropped, []);
  t.mock.timers.tick(1);
  await pages.idle();
  assert.deepEqual(dropped, [['/c/a.unverified']]);
});

test('idle cancels the drops leaveLater has not made yet (the files are being removed)', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { pages, dropped } = release();
  pages.leaveLater(['/c/b.unverified']);
  pages.leave(['/c/kept']);
  await pages.idle();
  t.mock.timers.tick(60_000);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(dropped, [['/c/kept']]);
});
