import type { JigdoFile } from '../format/jigdo.js';
import { describeLocation } from '../format/location.js';
import { splitLabel } from '../format/resolve.js';
import type { SourceFlags } from './options.js';

/**
 * Warnings for the labels `--local LABEL=DIR` and `--mirror LABEL=URL` name that the .jigdo never uses (in [Parts]
 * values, [Servers] lines or their values): a typo (`--local Prts=…`) kept a source out without a word, and the parts
 * were fetched from the network instead. Labels are compared as written (jigdo's are case-sensitive).
 */
export function unusedLabels(jigdo: JigdoFile, flags: Pick<SourceFlags, 'local' | 'mirror'>): string[] {
  const given = [...flags.local.map((v) => ['--local', v] as const), ...(flags.mirror ?? []).map((v) => ['--mirror', v] as const)];
  if (given.length === 0) return [];
  const used = new Set(jigdo.servers.keys());
  const note = (uri: string): void => {
    const at = splitLabel(uri);
    if (at && !at.rest.startsWith('//')) used.add(at.label); // (not a URL's scheme)
  };
  for (const values of jigdo.servers.values()) for (const v of values) note(v.uri);
  for (const values of jigdo.parts.values()) for (const v of values) note(v.uri);
  const shown = [...used].sort();
  return given.flatMap(([flag, value]) => {
    const label = value.slice(0, value.indexOf('='));
    return used.has(label) ? [] : [`${flag} ${value}: ${describeLocation(jigdo.location)} uses no label ${label} (its labels: ${shown.join(', ') || 'none'}): not used`];
  });
}

