/** serve's validators: Last-Modified never after the server's start, and If-Modified-Since never from the future. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { notModified } from '../../src/http/conditional.js';
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
