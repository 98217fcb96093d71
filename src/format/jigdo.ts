import { gunzipSync } from 'node:zlib';
import { parseConfigText, splitWords, type ConfigEvent } from './configfile.js';
import { decodeB64 } from './base64.js';
import { kindOfKey, type ChecksumKind } from './checksum.js';
import { JigdoError, errorMessage } from './errors.js';
import { describeLocation, resolveReference, type Location } from './location.js';

/** One `[Image]` section (spec §4.3). */
export interface JigdoImage {
  filename: string;
  template: string;
  templateMd5?: Buffer;
  templateSha256?: Buffer;
  shortInfo?: string;
  info?: string;
}

/** One value of a [Parts] or [Servers] line: its first word, its weight options, and the file it came from. */
export interface JigdoValue {
  uri: string;
  weight: number;
  base: Location;
}

export interface JigdoFile {
  location: Location;
  version: { major: number; minor: number };
  generator?: string;
  images: JigdoImage[];
  /** [Parts] lines by canonical checksum key, in file order across all [Parts] sections. */
  parts: Map<string, JigdoValue[]>;
  /** [Servers] lines by label, in file order across all [Servers] sections. */
  servers: Map<string, JigdoValue[]>;
  /** The checksum kind of the part keys (from Version, else from the keys). */
  checksumKind: ChecksumKind;
  /** Lines that were ignored because they could not be understood, for `info`. */
  warnings: string[];
}

export type IncludeLoader = (loc: Location) => Promise<Buffer>;

const MAX_KNOWN_MAJOR = 2;
const MAX_INCLUDE_DEPTH = 16;

/** Gunzips when the bytes start with the gzip magic (Debian names gzipped files `.jigdo`, spec §4.1). */
export function maybeGunzip(bytes: Buffer, loc: Location): Buffer {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      return gunzipSync(bytes);
    } catch (err) {
      throw new JigdoError(describeLocation(loc), `corrupt gzip data: ${errorMessage(err)}`);
    }
  }
  return bytes;
}

function decodeText(bytes: Buffer, loc: Location): string {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  // A .jigdo is text: NUL or other control bytes mean we were handed a binary (a template, an ISO...).
  const bad = text.search(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffd]/);
  if (bad >= 0) {
    const line = text.slice(0, bad).split('\n').length;
    throw new JigdoError(describeLocation(loc), `not a .jigdo file: binary data on line ${line}`);
  }
  return text;
}

/** Filename/Template are written unquoted even with spaces: split, then join with one space (spec §4.2). */
const joinedWords = (raw: string): string => splitWords(raw).join(' ');

/** Weight from GTK jigdo's `--try-first[=w]` / `--try-last[=w]` options; other words are ignored. */
function weightOf(words: string[]): number {
  let weight = 0;
  for (const word of words.slice(1)) {
    const m = /^--try-(first|last)(?:=(.*))?$/.exec(word);
    if (!m) continue;
    const w = m[2] === undefined ? 1 : Number(m[2]);
    if (Number.isFinite(w)) weight += m[1] === 'first' ? w : -w;
  }
  return weight;
}

/** Reads the events of a file and of everything it includes, in place, refusing include loops. */
async function expandEvents(
  bytes: Buffer,
  loc: Location,
  loadInclude: IncludeLoader | undefined,
  stack: string[],
  warnings: string[],
): Promise<Array<{ event: ConfigEvent; loc: Location }>> {
  const text = decodeText(maybeGunzip(bytes, loc), loc);
  const out: Array<{ event: ConfigEvent; loc: Location }> = [];
  for (const event of parseConfigText(text)) {
    if (event.type !== 'include') {
      out.push({ event, loc });
      continue;
    }
    const where = `${describeLocation(loc)}: line ${event.line}`;
    const target = resolveReference(event.url, loc);
    if (!target) throw new JigdoError(where, `[Include ${event.url}] may not read local files from a remote .jigdo`);
    const id = describeLocation(target);
    if (stack.includes(id)) throw new JigdoError(where, `loop of [Include] directives (${id})`);
    if (stack.length >= MAX_INCLUDE_DEPTH) throw new JigdoError(where, 'too many nested [Include] directives');
    // An [Include] that cannot be read only costs the mirrors it would add: warn, do not fail
    // (jigdo-file and jigdo-lite ignore [Include] altogether).
    let included: Buffer | undefined;
    try {
      included = loadInclude ? await loadInclude(target) : undefined;
    } catch (err) {
      warnings.push(`${where}: cannot read [Include ${event.url}]: ${errorMessage(err)}`);
    }
    if (!included) continue;
    // The directive ends the current section, before and after the included text (spec §4.3).
    const endSection = { event: { type: 'section', name: 'Include', line: event.line } as ConfigEvent, loc };
    out.push(endSection, ...(await expandEvents(included, target, loadInclude, [...stack, id], warnings)), endSection);
  }
  return out;
}

function parseVersion(raw: string, file: string): { major: number; minor: number } {
  const m = /^(\d+)\.(\d+)$/.exec(splitWords(raw)[0] ?? '');
  if (!m) throw new JigdoError(file, `[Jigdo] Version=${raw} is not of the form MAJOR.MINOR`);
  const version = { major: Number(m[1]), minor: Number(m[2]) };
  if (version.major > MAX_KNOWN_MAJOR) {
    throw new JigdoError(file, `needs a newer jigdo program: format version ${raw} (this one knows ${MAX_KNOWN_MAJOR}.x)`);
  }
  return version;
}

/**
 * Parses a .jigdo file (plain or gzipped) with its [Include]s. `loc` is where it was read from: relative
 * references are resolved against it.
 */
export async function parseJigdo(bytes: Buffer, loc: Location, loadInclude?: IncludeLoader): Promise<JigdoFile> {
  const file = describeLocation(loc);
  const warnings: string[] = [];
  const events = await expandEvents(bytes, loc, loadInclude, [file], warnings);
  const images: JigdoImage[] = [];
  const parts = new Map<string, JigdoValue[]>();
  const servers = new Map<string, JigdoValue[]>();
  let version: { major: number; minor: number } | undefined;
  let generator: string | undefined;
  let image: Partial<JigdoImage> | undefined;
  const kinds = new Set<ChecksumKind>();

  const closeImage = (): void => {
    if (image) images.push(image as JigdoImage);
    image = undefined;
  };

  for (const { event, loc: from } of events) {
    if (event.type === 'section') {
      closeImage();
      if (event.name === 'Image') image = {};
      continue;
    }
    if (event.type !== 'entry') continue;
    const { section, label, rawValue } = event;
    const where = `${describeLocation(from)}: line ${event.line}`;
    if (section === 'Jigdo') {
      if (label === 'Version') version = parseVersion(rawValue, where);
      else if (label === 'Generator') generator = rawValue.trim();
    } else if (section === 'Image' && image) {
      if (label === 'Filename') image.filename = joinedWords(rawValue);
      else if (label === 'Template') image.template = joinedWords(rawValue);
      else if (label === 'ShortInfo') image.shortInfo = rawValue.trim().slice(0, 200);
      else if (label === 'Info') image.info = rawValue.trim().slice(0, 5000);
      else if (label === 'Template-MD5Sum' || label === 'Template-SHA256Sum') {
        const md5 = label === 'Template-MD5Sum';
        const value = splitWords(rawValue)[0] ?? '';
        const sum = decodeB64(value, md5 ? 16 : 32);
        if (!sum) throw new JigdoError(where, `${label}=${value} is not a valid jigdo-base64 checksum`);
        if (md5) image.templateMd5 = sum;
        else image.templateSha256 = sum;
      }
    } else if (section === 'Parts') {
      const kind = kindOfKey(label);
      const words = splitWords(rawValue);
      if (!kind || words.length === 0) {
        warnings.push(`${where}: ignored [Parts] line with ${kind ? 'no value' : `bad checksum "${label}"`}`);
        continue;
      }
      kinds.add(kind);
      const list = parts.get(label) ?? [];
      list.push({ uri: words[0]!, weight: weightOf(words), base: from });
      parts.set(label, list);
    } else if (section === 'Servers') {
      const words = splitWords(rawValue);
      if (words.length === 0) continue;
      const list = servers.get(label) ?? [];
      list.push({ uri: words[0]!, weight: weightOf(words), base: from });
      servers.set(label, list);
    }
  }
  closeImage();

  const usable = images.filter((img) => img.filename && img.template);
  if (usable.length === 0) {
    throw new JigdoError(file, images.length ? '[Image] section lacks Filename or Template' : 'no [Image] section (not a .jigdo file?)');
  }
  if (kinds.size > 1) throw new JigdoError(file, '[Parts] mixes MD5 and SHA-256 keys');
  const checksumKind: ChecksumKind =
    [...kinds][0] ?? (version && version.major >= 2 ? 'sha256' : usable[0]!.templateSha256 && !usable[0]!.templateMd5 ? 'sha256' : 'md5');
  return { location: loc, version: version ?? { major: 1, minor: 0 }, generator, images: usable, parts, servers, checksumKind, warnings };
}
