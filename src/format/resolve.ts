import { CHECKSUM_LABEL } from './checksum.js';
import type { JigdoFile, JigdoValue } from './jigdo.js';
import { resolveReference, type Location } from './location.js';

/**
 * Turning a part into candidate locations (spec §5.1 for the label expansion, §5.5 for the order).
 * Joining is plain string concatenation, exactly as jigdo does: no `/` is added or removed.
 */

/** One expanded string with its accumulated weight and the file whose value supplied its head. */
interface Expansion {
  text: string;
  weight: number;
  base: Location;
}

export type Candidate =
  | { kind: 'url'; url: string; weight: number; label?: string; rest?: string }
  | { kind: 'file'; path: string; weight: number; label?: string; rest?: string }
  /** `Label:path` whose label is not defined (or a scheme we cannot fetch): reported, never fetched. */
  | { kind: 'unresolved'; text: string; weight: number; label?: string; rest?: string };

/** The label prefix of `Label:rest`: jigdo-file takes the first colon (spec §5.1 step 1). */
export function splitLabel(text: string): { label: string; rest: string } | undefined {
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  return { label: text.slice(0, colon), rest: text.slice(colon + 1) };
}

export class LabelMap {
  private readonly memo = new Map<string, Expansion[]>();

  constructor(
    private readonly servers: Map<string, JigdoValue[]>,
    /** Extra values tried before the file's own, like jigdo-lite's `--uri` (spec §5.1). */
    private readonly extra: Map<string, JigdoValue[]> = new Map(),
  ) {}

  /** Every string a label stands for, in order; loops are dropped quietly as jigdo-file does. */
  expand(label: string, visiting: Set<string> = new Set()): Expansion[] {
    const known = this.memo.get(label);
    if (known) return known;
    if (visiting.has(label)) return [];
    visiting.add(label);
    const values = [...(this.extra.get(label) ?? []), ...(this.servers.get(label) ?? [])];
    const out: Expansion[] = [];
    for (const value of values) out.push(...this.expandValue(value.uri, value.weight, value.base, visiting));
    visiting.delete(label);
    this.memo.set(label, out);
    return out;
  }

  /** Expands `L:rest` through L's mapping when L is a defined label; otherwise the value stands as it is. */
  expandValue(text: string, weight: number, base: Location, visiting: Set<string> = new Set()): Expansion[] {
    const split = splitLabel(text);
    if (split && !/^(https?|ftp|file)$/i.test(split.label)) {
      const heads = this.expand(split.label, visiting);
      if (heads.length > 0) return heads.map((h) => ({ text: h.text + split.rest, weight: h.weight + weight, base: h.base }));
    }
    return [{ text, weight, base }];
  }

  has(label: string): boolean {
    return this.expand(label).length > 0;
  }
}

/** Classifies one expanded string: a fetchable URL, a local file, or something we cannot use. */
function toCandidate(e: Expansion, origin?: { label: string; rest: string }): Candidate {
  const extra = origin ? { label: origin.label, rest: origin.rest } : {};
  const split = splitLabel(e.text);
  const scheme = split?.label.toLowerCase();
  const isLabel = split !== undefined && !split.label.includes('/') && scheme !== 'http' && scheme !== 'https' && scheme !== 'file';
  if (isLabel) return { kind: 'unresolved', text: e.text, weight: e.weight, ...extra };
  const loc = resolveReference(e.text, e.base);
  if (!loc) return { kind: 'unresolved', text: e.text, weight: e.weight, ...extra };
  return loc.kind === 'url'
    ? { kind: 'url', url: loc.url, weight: e.weight, ...extra }
    : { kind: 'file', path: loc.path, weight: e.weight, ...extra };
}

/** The raw strings jigdo-file's print-missing-all prints for a part (spec §5.1), for `missing`. */
export function expandPart(jigdo: JigdoFile, labels: LabelMap, key: string): Expansion[] {
  const out: Expansion[] = [];
  for (const value of jigdo.parts.get(key) ?? []) out.push(...labels.expandValue(value.uri, value.weight, value.base));
  const sumLabel = CHECKSUM_LABEL[jigdo.checksumKind];
  out.push(...labels.expandValue(`${sumLabel}:${key}`, 0, jigdo.location));
  return out;
}

/**
 * The ordered candidates of a part (spec §5.5): every [Parts] line in file order with its expansions in
 * [Servers] order, then the MD5Sum:/SHA256Sum: expansion when that label is defined; stable-sorted by
 * weight (`--try-first` up, `--try-last` down). Duplicates are dropped.
 */
export function partCandidates(jigdo: JigdoFile, labels: LabelMap, key: string): Candidate[] {
  const out: Candidate[] = [];
  for (const value of jigdo.parts.get(key) ?? []) {
    const origin = splitLabel(value.uri);
    for (const e of labels.expandValue(value.uri, value.weight, value.base)) out.push(toCandidate(e, origin));
  }
  const sumLabel = CHECKSUM_LABEL[jigdo.checksumKind];
  if (labels.has(sumLabel)) {
    for (const e of labels.expandValue(`${sumLabel}:${key}`, 0, jigdo.location)) out.push(toCandidate(e));
  }
  const seen = new Set<string>();
  const unique = out.filter((c) => {
    const id = c.kind === 'url' ? c.url : c.kind === 'file' ? c.path : c.text;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
  return unique
    .map((c, i) => ({ c, i }))
    .sort((a, b) => b.c.weight - a.c.weight || a.i - b.i)
    .map(({ c }) => c);
}
