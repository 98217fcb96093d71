import type { JigdoFile } from '../format/jigdo.js';
import { CHECKSUM_LABEL } from '../format/checksum.js';
import { describeLocation } from '../format/location.js';
import { splitLabel } from '../format/resolve.js';
import type { SourceFlags } from './options.js';

/**
 * Warnings for the labels `--local LABEL=DIR` and `--mirror LABEL=URL` name that the .jigdo never uses: a typo
 * (`--local Prts=…`) kept a source out without a word, and the parts were fetched from the network instead. A --local
 * label is looked for where the local sources look (the labels [Parts] values begin with); a --mirror label also in
 * [Servers] lines and their values, and the checksum label every part has (`MD5Sum:KEY`, jigdo-lite's servers by
 * checksum). Labels are compared as written (jigdo's are case-sensitive).
 */
export function unusedLabels(jigdo: JigdoFile, flags: Pick<SourceFlags, 'local' | 'mirror'>): string[] {
  if (flags.local.length === 0 && (flags.mirror ?? []).length === 0) return [];
  const inParts = new Set<string>();
  for (const values of jigdo.parts.values()) for (const v of values) noteLabel(inParts, v.uri);
  const forMirrors = new Set([...inParts, ...jigdo.servers.keys(), CHECKSUM_LABEL[jigdo.checksumKind]]);
  for (const values of jigdo.servers.values()) for (const v of values) noteLabel(forMirrors, v.uri);
  const check = (flag: string, value: string, used: Set<string>): string[] => {
    const label = value.slice(0, value.indexOf('='));
    if (used.has(label)) return [];
    return [`${flag} ${value}: ${describeLocation(jigdo.location)} uses no label ${label} (its labels: ${[...used].sort().join(', ') || 'none'}): not used`];
  };
  return [...flags.local.flatMap((v) => check('--local', v, inParts)), ...(flags.mirror ?? []).flatMap((v) => check('--mirror', v, forMirrors))];
}

/** Adds the label a value begins with (`Label:rest`), not a URL's scheme. */
function noteLabel(labels: Set<string>, uri: string): void {
  const at = splitLabel(uri);
  if (at && !at.rest.startsWith('//')) labels.add(at.label);
}
