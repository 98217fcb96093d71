import { stat } from 'node:fs/promises';
import type { ImageSession } from '../engine/session.js';
import { uniqueNames } from '../util/unique-names.js';

/** An image as the server offers it: its URL name, the engine session behind it, and its validators. */
export interface ServedImage {
  /** The last path segment of its URL (unique on this server). */
  name: string;
  session: ImageSession;
  size: number;
  /** Strong entity tag: the image's own checksum from the template, so it names the exact bytes. */
  etag: string;
  /** The template's mtime (at most the server's start), to whole seconds (HTTP dates have no more). */
  lastModified: Date;
  contentType: string;
}

/** `"md5-<hex>"` / `"sha256-<hex>"`: equal tags mean equal bytes, which is what a strong ETag promises. */
export function imageEtag(session: Pick<ImageSession, 'layout'>): string {
  return `"${session.layout.checksumKind}-${session.layout.imageSum.toString('hex')}"`;
}

/** ISO 9660 images get their registered type (QEMU, browsers, BMCs look at it); anything else is bytes. */
export function contentTypeOf(name: string): string {
  return /\.iso$/i.test(name) ? 'application/x-iso9660-image' : 'application/octet-stream';
}

/** One ServedImage per session, names made unique (two [Image]s or two .jigdo files may share a file name). */
export async function servedImages(sessions: ImageSession[], startedAt: Date): Promise<ServedImage[]> {
  const names = uniqueNames(sessions.map((s) => s.name));
  const out: ServedImage[] = [];
  for (const [i, session] of sessions.entries()) {
    const name = names[i]!;
    // Not after the server's start: a template dated in the future (a clock ahead where it was made) would be a
    // Last-Modified no If-Modified-Since could reach (they are ignored past now: conditional.ts), never a 304.
    const mtime = await stat(session.templatePath).then((st) => (st.mtime > startedAt ? startedAt : st.mtime), () => startedAt);
    out.push({
      name,
      session,
      size: session.layout.size,
      etag: imageEtag(session),
      lastModified: new Date(Math.floor(mtime.getTime() / 1000) * 1000),
      contentType: contentTypeOf(name),
    });
  }
  return out;
}
