import path from 'node:path';

/**
 * Where a .jigdo, template or part lives: an absolute local path or an http(s) URL. Relative references
 * are resolved against the file they appear in (GTK jigdo semantics, spec §5.2 / §5.5 step 2).
 */
export type Location = { kind: 'file'; path: string } | { kind: 'url'; url: string };

const REMOTE = /^https?:\/\//i;

export function isRemote(text: string): boolean {
  return REMOTE.test(text);
}

/** A location given by the user on the command line (path relative to the current directory, or URL). */
export function locationFromUser(text: string): Location {
  return isRemote(text) ? { kind: 'url', url: new URL(text).href } : { kind: 'file', path: path.resolve(text) };
}

export function describeLocation(loc: Location): string {
  return loc.kind === 'file' ? loc.path : loc.url;
}

/**
 * Resolves `ref` (a URL, a `file:` URI, or a relative reference) against the location of the file it
 * came from. Returns undefined for a local path reached from a remote file: a remote .jigdo must not
 * make us read local files.
 */
export function resolveReference(ref: string, base: Location): Location | undefined {
  if (isRemote(ref)) return { kind: 'url', url: ref };
  if (/^file:/i.test(ref)) {
    if (base.kind === 'url') return undefined;
    const rest = ref.slice(5).replace(/^\/\/(?=\/)/, ''); // file:///abs → /abs
    return { kind: 'file', path: path.resolve(path.dirname(base.path), rest) };
  }
  if (base.kind === 'url') return { kind: 'url', url: new URL(ref, base.url).href };
  return { kind: 'file', path: path.resolve(path.dirname(base.path), ref) };
}

/** The last path component of a location, for naming downloaded or cached copies. */
export function baseName(loc: Location): string {
  if (loc.kind === 'file') return path.basename(loc.path);
  return decodeURIComponent(new URL(loc.url).pathname.split('/').pop() ?? '');
}
