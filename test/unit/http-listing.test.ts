// What `/` of `jigdofs serve` tells clients about each image (src/http/listing.ts): never the server's own paths or
// the credentials of the .jigdo's URL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listedImages } from '../../src/http/listing.js';
import type { ServedImage } from '../../src/http/served-image.js';

const served = (location: { kind: 'file'; path: string } | { kind: 'url'; url: string }): ServedImage =>
  ({
    name: 'x.iso',
    size: 10,
    contentType: 'application/x-iso9660-image',
    etag: '"md5-00"',
    lastModified: new Date(0),
    session: { jigdo: { location }, layout: { checksumKind: 'md5', imageSum: Buffer.alloc(16) } },
  }) as unknown as ServedImage;

test('a local .jigdo is listed by its file name, a remote one by its URL without user name and password', () => {
  assert.equal(listedImages([served({ kind: 'file', path: '/home/alice/isos/debian-12.jigdo' })])[0]!.jigdo, 'debian-12.jigdo');
  assert.equal(listedImages([served({ kind: 'url', url: 'https://bob:s3cret@cdimage.example/12/x.jigdo' })])[0]!.jigdo, 'https://cdimage.example/12/x.jigdo');
  assert.equal(listedImages([served({ kind: 'url', url: 'https://cdimage.example/12/x.jigdo' })])[0]!.jigdo, 'https://cdimage.example/12/x.jigdo');
});
