import path from 'node:path';
import { percentEncodeComponent, shown } from '../format/byte-string.js';
import type { IncomingHttpHeaders } from 'node:http';
import type { ServedImage } from './served-image.js';

/** What `/` says about one image, in JSON. */
export interface ListedImage {
  name: string;
  url: string;
  size: number;
  contentType: string;
  etag: string;
  lastModified: string;
  checksum: { kind: string; hex: string };
  /** The .jigdo's file name, or its URL without userinfo. */
  jigdo: string;
}

export function listedImages(images: ServedImage[]): ListedImage[] {
  return images.map((img) => {
    const loc = img.session.jigdo.location;
    return {
      name: img.name,
      url: `/${percentEncodeComponent(img.name)}`,
      size: img.size,
      contentType: img.contentType,
      etag: img.etag,
      lastModified: img.lastModified.toUTCString(),
      checksum: { kind: img.session.layout.checksumKind, hex: img.session.layout.imageSum.toString('hex') },
      jigdo: loc.kind === 'file' ? path.basename(loc.path) : withoutUserinfo(loc.url),
    };
  });
}

/**
 * The .jigdo's URL as a client may see it: without a user name or password in it. (A local .jigdo is listed by its
 * file name: where it lies on the server's disk is not the client's business.)
 */
function withoutUserinfo(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.href;
  } catch {
    return '';
  }
}

/** JSON when the client asks for it (`Accept: application/json`, not merely `*\/*`), else HTML. */
export function wantsJson(headers: IncomingHttpHeaders): boolean {
  return /\bapplication\/json\b/i.test(headers.accept ?? '');
}

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** The listing for people: a table of links with sizes and checksums. */
export function listingHtml(images: ServedImage[]): string {
  const rows = listedImages(images)
    .map(
      (i) =>
        `<tr><td><a href="${escapeHtml(i.url)}">${escapeHtml(shown(i.name))}</a></td><td>${i.size}</td>` +
        `<td><code>${i.checksum.kind} ${i.checksum.hex}</code></td><td>${escapeHtml(shown(i.jigdo))}</td></tr>`,
    )
    .join('\n');
  return (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>jigdofs serve</title></head><body>\n' +
    '<h1>Images</h1>\n<table>\n<tr><th>image</th><th>bytes</th><th>checksum</th><th>from</th></tr>\n' +
    `${rows}\n</table>\n</body></html>\n`
  );
}
