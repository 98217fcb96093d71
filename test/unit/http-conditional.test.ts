/** serve's validators: Last-Modified never after the server's start, and If-Modified-Since never from the future. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { notModified, preconditionFailed, rangeApplies } from '../../src/http/conditional.js';
import { servedImages } from '../../src/http/served-image.js';
import type { ImageSession } from '../../src/engine/session.js';

/** A session as servedImages reads it: its name, template file and layout. */
const sessionOf = (templatePath: string): ImageSession =>
  ({ name: 'x.iso', templatePath, layout: { size: 10, checksumKind: 'md5', imageSum: Buffer.alloc(16) } }) as unknown as ImageSession;

test('a template dated in the future gives the server start as Last-Modified; an older one its own date', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-conditional-'));
  try {
    const template = path.join(dir, 'x.template');
    await writeFile(template, 'x');
    const startedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    await utimes(template, startedAt.getTime() / 1000 + 86_400, startedAt.getTime() / 1000 + 86_400);
    const [future] = await servedImages([sessionOf(template)], startedAt);
    assert.equal(future!.lastModified.getTime(), startedAt.getTime());
    // ...so that a client sending it back gets its 304, which a date past the server's clock never gets.
    assert.equal(notModified({ 'if-modified-since': future!.lastModified.toUTCString() }, future!), true);
    await utimes(template, 1_000_000_000, 1_000_000_000);
    const [past] = await servedImages([sessionOf(template)], startedAt);
    assert.equal(past!.lastModified.getTime(), 1_000_000_000_000);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('If-Modified-Since: at or after Last-Modified gives 304, unless it is later than now; If-None-Match decides when given', async () => {
  const [image] = await servedImages([sessionOf('/nonexistent/x.template')], new Date('2026-01-01T00:00:00Z'));
  const now = Date.parse('2026-06-01T00:00:00Z');
  const ims = (d: string) => notModified({ 'if-modified-since': d }, image!, now);
  assert.equal(ims('Thu, 01 Jan 2026 00:00:00 GMT'), true);
  assert.equal(ims('Sun, 01 Mar 2026 00:00:00 GMT'), true);
  assert.equal(ims('Wed, 31 Dec 2025 23:59:59 GMT'), false);
  assert.equal(ims('Tue, 02 Jun 2026 00:00:00 GMT'), false, 'later than now: ignored');
  assert.equal(ims('not a date'), false);
  assert.equal(notModified({ 'if-none-match': '"other"', 'if-modified-since': 'Sun, 01 Mar 2026 00:00:00 GMT' }, image!, now), false);
});

test('dates: the three HTTP-date forms, all GMT (asctime too, whatever TZ says); anything else is ignored', async () => {
  // Found by a probe: Date.parse took `2020` (412 to If-Unmodified-Since) and ISO 8601 (304), and read asctime in the
  // server's local time (a client an hour stale got 304).
  const tz = process.env.TZ;
  process.env.TZ = 'America/New_York';
  try {
    const [image] = await servedImages([sessionOf('/nonexistent/x.template')], new Date('2026-12-07T10:35:20Z'));
    const now = Date.parse('2026-12-08T00:00:00Z');
    const ims = (d: string) => notModified({ 'if-modified-since': d }, image!, now);
    assert.equal(ims('Mon, 07 Dec 2026 10:35:20 GMT'), true);
    assert.equal(ims('Monday, 07-Dec-26 10:35:20 GMT'), true);
    assert.equal(ims('Mon Dec  7 10:35:20 2026'), true);
    assert.equal(ims('Mon Dec  7 09:35:20 2026'), false, 'asctime an hour before Last-Modified');
    for (const notADate of ['2026-12-07T11:00:00Z', '2027', '0', 'Mon, 07 Dec 2026 10:35:20', 'Mon, 31 Feb 2026 10:35:20 GMT']) {
      assert.equal(ims(notADate), false, notADate);
      assert.equal(preconditionFailed({ 'if-unmodified-since': notADate }, image!), false, notADate);
    }
    assert.equal(preconditionFailed({ 'if-unmodified-since': 'Sun, 06 Dec 2026 10:35:20 GMT' }, image!), true);
    assert.equal(rangeApplies({ 'if-range': 'Mon Dec  7 10:35:20 2026' }, image!), true, 'If-Range with the date in asctime');
  } finally {
    if (tz === undefined) delete process.env.TZ;
    else process.env.TZ = tz;
  }
});
