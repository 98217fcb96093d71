import path from 'node:path';

/**
 * The names given, made unique in order: a name taken already gets a number before its extension (`debian.iso`,
 * `debian-2.iso`, `debian-3.iso`), so that the second of two images of one name keeps its type (serve's Content-Type,
 * a file manager's idea of it). Two [Image]s, or two .jigdo files served together, may share a file name.
 */
export function uniqueNames(names: readonly string[]): string[] {
  const taken = new Set<string>();
  return names.map((name) => {
    const ext = path.extname(name);
    const stem = name.slice(0, name.length - ext.length);
    let unique = name;
    for (let i = 2; taken.has(unique); i++) unique = `${stem}-${i}${ext}`;
    taken.add(unique);
    return unique;
  });
}
