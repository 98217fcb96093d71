import { encodeBytes } from '../format/byte-string.js';

/**
 * The .jigdo text make-template writes, line for line as jigdo-file's mkjigdo.cc does: optionally start
 * from a `--merge` file (its [Parts] entries are taken out and written again, sorted, in one [Parts] at
 * the end; everything else stays), add [Jigdo] when missing, fill an empty Template-MD5Sum= (or
 * -SHA256Sum=) of an [Image] or append a new [Image], add one [Servers] line per label used, and list
 * one [Parts] line per distinct checksum, sorted by `value + key` bytes as jigdo-file's std::set sorts.
 */
export const JIGDO_URL = 'https://www.einval.com/~steve/software/jigdo/';

/** ConfigFile::quote: '…' when the text has a space, TAB or #, "…" with escapes when it has a '. */
export function quoteValue(s: string): string {
  const single = s.includes("'");
  const needQuotes = /[ \t#]/.test(s);
  const escapes = /["\\]/.test(s);
  if (!single && !needQuotes && !escapes) return s;
  if (!single) return `'${s}'`;
  return `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

export interface MatchedPart {
  /** Canonical jigdo-base64 of the part's checksum. */
  key: string;
  location: string;
  leaf: string;
}

export interface JigdoJob {
  /** Lines of the --merge file, or [] . */
  merge: string[];
  version: '1.2' | '2.0';
  generator: string;
  imageName: string;
  templateName: string;
  templateSum: string;
  sumLabel: 'Template-MD5Sum' | 'Template-SHA256Sum';
  /** In image order (the first location of a checksum wins). */
  parts: MatchedPart[];
  /** --label: location (normalized, no trailing /) → label. */
  labels: Map<string, string>;
  /** --uri: label → URI. */
  uris: Map<string, string>;
}

const firstChar = (line: string): string => line.trimStart().charAt(0);
const isSection = (line: string): boolean => firstChar(line) === '[';
const sectionName = (line: string): string => /^\s*\[\s*([^\]\s[=#]*)/.exec(line)?.[1] ?? '';
const isEntry = (line: string): boolean => !isSection(line) && firstChar(line) !== '#' && line.includes('=');
const entryLabel = (line: string): string => line.slice(0, line.indexOf('=')).trim();

interface PartLine {
  value: string;
  key: string;
}

/** Takes the [Parts] sections out of `lines` (jigdo-file's prepareJigdo); returns their entries. */
function takeParts(lines: string[]): PartLine[] {
  const parts: PartLine[] = [];
  for (let i = 0; i < lines.length; ) {
    if (!(isSection(lines[i]!) && sectionName(lines[i]!) === 'Parts')) {
      i++;
      continue;
    }
    lines.splice(i, 1);
    while (i < lines.length && !isSection(lines[i]!)) {
      const line = lines[i]!;
      if (line.trim() === '') lines.splice(i, 1);
      else if (firstChar(line) === '#') i++;
      else {
        const eq = line.indexOf('=');
        parts.push(eq < 0 ? { value: line, key: '' } : { value: line.slice(eq + 1), key: line.slice(0, eq).trim() });
        lines.splice(i, 1);
      }
    }
  }
  return parts;
}

function addJigdoSection(lines: string[], job: JigdoJob): void {
  if (lines.some((l) => isSection(l) && sectionName(l) === 'Jigdo')) return;
  if (lines.length === 0) lines.push('# JigsawDownload', `# See <${JIGDO_URL}> for details about jigdo`, '');
  let at = lines.findIndex(isSection);
  if (at < 0) at = lines.length;
  while (at > 0 && firstChar(lines[at - 1]!) === '#') at--;
  lines.splice(at, 0, '[Jigdo]', `Version=${job.version}`, `Generator=${job.generator}`, '');
}

function addImageSection(lines: string[], job: JigdoJob): void {
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (isSection(line)) section = sectionName(line);
    else if (section === 'Image' && isEntry(line) && entryLabel(line) === job.sumLabel) {
      const eq = line.indexOf('=');
      if (line.slice(eq + 1).trim() === '') {
        lines[i] = line.slice(0, eq + 1) + job.templateSum + line.slice(eq + 1);
        return;
      }
    }
  }
  if (lines.length > 0 && lines[lines.length - 1] !== '') lines.push('');
  lines.push('[Image]', `Filename=${job.imageName}`, `Template=${job.templateName}`, `${job.sumLabel}=${job.templateSum}`);
}

/** Where new [Servers] lines go: after the last entry of the last [Servers] (made if there is none). */
function serversInsertPoint(lines: string[]): number {
  let last = -1;
  lines.forEach((l, i) => {
    if (isSection(l) && sectionName(l) === 'Servers') last = i;
  });
  if (last < 0) {
    if (lines.length > 0 && lines[lines.length - 1] !== '') lines.push('');
    lines.push('[Servers]');
    return lines.length;
  }
  let at = last + 1;
  for (let i = last + 1; i < lines.length && !isSection(lines[i]!); i++) if (isEntry(lines[i]!)) at = i + 1;
  return at;
}

function serverLabels(lines: string[]): Set<string> {
  const out = new Set<string>();
  let section = '';
  for (const l of lines) {
    if (isSection(l)) section = sectionName(l);
    else if (section === 'Servers' && isEntry(l)) out.add(entryLabel(l));
  }
  return out;
}

function nextLabel(name: string): string {
  const chars = [...name];
  for (let n = 0; ; n++) {
    if (n === chars.length) return `${chars.join('')}A`;
    chars[n] = chars[n] === 'Z' ? 'A' : String.fromCharCode(chars[n]!.charCodeAt(0) + 1);
    if (chars[n] !== 'A') return chars.join('');
  }
}

const normal = (dir: string): string => dir.replace(/\/+$/, '');

export function buildJigdo(job: JigdoJob): Buffer {
  const lines = [...job.merge];
  const parts = takeParts(lines);
  addJigdoSection(lines, job);
  addImageSection(lines, job);
  let insertAt = serversInsertPoint(lines);
  const known = new Set(parts.map((p) => p.key));
  const locationLabel = new Map<string, string>();
  const serverLines = new Set(lines);
  let auto = 'A';
  for (const p of job.parts) {
    if (known.has(p.key)) continue;
    known.add(p.key);
    let label = locationLabel.get(p.location) ?? job.labels.get(normal(p.location));
    // A --uri is written as given, as jigdo-file writes it: its value may go on with server options (`--try-last`)
    // that quotes would make part of the URI. Only the file: URIs made here are quoted.
    const given = label !== undefined ? job.uris.get(label) : undefined;
    if (label === undefined) {
      const taken = serverLabels(lines);
      while (taken.has(auto)) auto = nextLabel(auto);
      label = auto;
    }
    parts.push({ value: quoteValue(`${label}:${p.leaf}`), key: p.key });
    if (locationLabel.has(p.location)) continue;
    locationLabel.set(p.location, label);
    const server = `${label}=${given ?? quoteValue(`file:${p.location}`)}`;
    if (!serverLines.has(server)) {
      lines.splice(insertAt++, 0, server);
      serverLines.add(server);
    }
  }
  if (lines.length > 0 && lines[lines.length - 1] !== '') lines.push('');
  lines.push('[Parts]');
  const bytes = parts.map((p) => ({ p, sort: encodeBytes(p.value + p.key), split: encodeBytes(p.value).length }));
  bytes.sort((a, b) => Buffer.compare(a.sort, b.sort) || a.split - b.split);
  for (const { p } of bytes) lines.push(`${p.key}=${p.value}`);
  return encodeBytes(`${lines.join('\n')}\n`);
}
