import { CHECKSUM_LABEL, kindOfKey } from './checksum.js';
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

/**
 * At most this many candidates per part, and strings per label: the first ones in spec order (§5.5),
 * before the weight sort. Real files give a part a handful; a fan-out of labels in [Servers] (8 values
 * at each of 6 levels: 262,144 strings) would otherwise cost that much memory and time for every part.
 */
export const MAX_CANDIDATES_PER_PART = 256;
/**
 * An expanded string longer than this is dropped (no server takes such a URL: nginx's request line is at most 8 KiB;
 * no file system such a path), and a label's or a part's strings stop at MAX_CANDIDATE_CHARS in all: the work per part
 * stays bounded whatever the length of the [Servers] values. A fuzzed .jigdo with one 1 MB value behind a fan-out of
 * 256 made 268 MB of candidate text for its one part, each string then percent-encoded and parsed as a URL.
 */
export const MAX_CANDIDATE_LENGTH = 8192;
const MAX_CANDIDATE_CHARS = 64 * 1024;
/** Labels are expanded through at most this many levels; a deeper chain is cut like a loop. */
const MAX_LABEL_DEPTH = 32;

export class LabelMap {
  private readonly memo = new Map<string, Expansion[]>();

  constructor(
    private readonly servers: ReadonlyMap<string, readonly JigdoValue[]>,
    /** Extra values tried before the file's own, like jigdo-lite's `--uri` (spec §5.1). */
    private readonly extra: ReadonlyMap<string, readonly JigdoValue[]> = new Map(),
  ) {}

  /**
   * The first MAX_CANDIDATES_PER_PART strings a label stands for, in order; loops are dropped quietly as
   * jigdo-file does. Each label is expanded once (memo), so the work is bounded by the number of
   * [Servers] lines times that bound, whatever their fan-out.
   */
  expand(label: string, visiting: Set<string> = new Set()): Expansion[] {
    const known = this.memo.get(label);
    if (known) return known;
    if (visiting.has(label) || visiting.size >= MAX_LABEL_DEPTH) return [];
    visiting.add(label);
    const out: Expansion[] = [];
    const values = [...(this.extra.get(label) ?? []), ...(this.servers.get(label) ?? [])];
    for (const value of values) if (appendUpTo(out, this.expandValue(value.uri, value.weight, value.base, visiting))) break;
    visiting.delete(label);
    this.memo.set(label, out);
    return out;
  }

  /** Expands `L:rest` through L's mapping when L is a defined label; otherwise the value stands as it is. */
  expandValue(text: string, weight: number, base: Location, visiting: Set<string> = new Set()): Expansion[] {
    const split = splitLabel(text);
    if (split && !/^(https?|ftp|file)$/i.test(split.label)) {
      const heads = this.expand(split.label, visiting);
      // (One too long to be a candidate is not even made.)
      const fit = heads.filter((h) => h.text.length + split.rest.length <= MAX_CANDIDATE_LENGTH);
      if (heads.length > 0) return fit.map((h) => ({ text: h.text + split.rest, weight: h.weight + weight, base: h.base }));
    }
    return [{ text, weight, base }];
  }

  has(label: string): boolean {
    return this.expand(label).length > 0;
  }
}

/**
 * Appends items until `out` holds MAX_CANDIDATES_PER_PART strings or the next would take it past MAX_CANDIDATE_CHARS
 * characters, skipping any longer than MAX_CANDIDATE_LENGTH (never `push(...items)`: a big spread overflows the stack).
 * True once `out` is full: its caller appends nothing more, so that what it holds is the first strings in spec order.
 */
function appendUpTo<T extends { text: string }>(out: T[], items: readonly T[]): boolean {
  let chars = 0;
  for (const item of out) chars += item.text.length;
  for (const item of items) {
    if (out.length >= MAX_CANDIDATES_PER_PART) return true;
    if (item.text.length > MAX_CANDIDATE_LENGTH) continue;
    if (chars + item.text.length > MAX_CANDIDATE_CHARS) return true;
    chars += item.text.length;
    out.push(item);
  }
  return out.length >= MAX_CANDIDATES_PER_PART;
}

/** Classifies one expanded string: a fetchable URL, a local file, or something we cannot use. */
function toCandidate(e: Expansion, origin?: { label: string; rest: string }): Candidate {
  const extra = origin ? { label: origin.label, rest: origin.rest } : {};
  const split = splitLabel(e.text);
  const scheme = split?.label.toLowerCase();
  const isLabel = split !== undefined && !split.label.includes('/') && scheme !== 'http' && scheme !== 'https' && scheme !== 'file';
  if (isLabel) return { kind: 'unresolved', text: e.text, weight: e.weight, ...extra };
  let loc: Location | undefined;
  try {
    loc = resolveReference(e.text, e.base);
  } catch {
    loc = undefined; // not a valid URL: reported, never fetched; other candidates (local ones too) still count
  }
  if (!loc) return { kind: 'unresolved', text: e.text, weight: e.weight, ...extra };
  return loc.kind === 'url'
    ? { kind: 'url', url: loc.url, weight: e.weight, ...extra }
    : { kind: 'file', path: loc.path, weight: e.weight, ...extra };
}

/** A part's [Parts] values expanded, in spec order (§5.1), each with the label and rest of the value it came from. */
function expandValues(jigdo: JigdoFile, labels: LabelMap, key: string): { out: Array<Expansion & { origin?: { label: string; rest: string } }>; full: boolean } {
  const out: Array<Expansion & { origin?: { label: string; rest: string } }> = [];
  for (const value of jigdo.parts.get(key) ?? []) {
    const origin = splitLabel(value.uri);
    if (appendUpTo(out, labels.expandValue(value.uri, value.weight, value.base).map((e) => ({ ...e, origin })))) return { out, full: true };
  }
  return { out, full: false };
}

/**
 * MD5Sum or SHA256Sum: the kind of the key itself (the template's). The .jigdo's kind comes from its [Parts] keys, and
 * with none (all missing, or in an [Include] not read) it fell back to MD5 for a SHA-256 template.
 */
function sumLabelOf(jigdo: JigdoFile, key: string): string {
  return CHECKSUM_LABEL[kindOfKey(key) ?? jigdo.checksumKind];
}

/** The raw strings jigdo-file's print-missing-all prints for a part (spec §5.1), for `missing`: the first MAX_CANDIDATES_PER_PART. */
export function expandPart(jigdo: JigdoFile, labels: LabelMap, key: string): Expansion[] {
  const { out, full } = expandValues(jigdo, labels, key);
  if (!full) appendUpTo(out, labels.expandValue(`${sumLabelOf(jigdo, key)}:${key}`, 0, jigdo.location));
  return out.map(({ text, weight, base }) => ({ text, weight, base }));
}

/**
 * The ordered candidates of a part (spec §5.5): every [Parts] line in file order with its expansions in
 * [Servers] order, then the MD5Sum:/SHA256Sum: expansion when that label is defined; stable-sorted by
 * weight (`--try-first` up, `--try-last` down). Duplicates are dropped. At most MAX_CANDIDATES_PER_PART,
 * and it never throws: local lookups (src/sources/local.ts) rely on it whatever the [Servers] say.
 */
export function partCandidates(jigdo: JigdoFile, labels: LabelMap, key: string): Candidate[] {
  const { out: expanded, full } = expandValues(jigdo, labels, key);
  const sumLabel = sumLabelOf(jigdo, key);
  if (!full && labels.has(sumLabel)) appendUpTo(expanded, labels.expandValue(`${sumLabel}:${key}`, 0, jigdo.location));
  const out = expanded.map((e) => toCandidate(e, e.origin));
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
