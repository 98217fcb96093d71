import { ConfigLineParser, splitWords, type ConfigEvent } from './configfile.js';
import { decodeB64 } from './base64.js';
import { decodeBytes, quoted } from './byte-string.js';
import { kindOfKey, type ChecksumKind } from './checksum.js';
import { JigdoError, elided, errorMessage } from './errors.js';
import { gunzipMembers } from './gzip-members.js';
import { describeLocation, resolveReference, type Location } from './location.js';
import { MAX_VALUES_PER_PART, PartTable } from './part-table.js';

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
  parts: PartTable;
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

/**
 * Limits that keep a hostile .jigdo (a gzip bomb, an [Include] of /dev/zero, millions of repeated lines)
 * from exhausting memory. Text: 256 MiB in all, the .jigdo with its [Include]s, after gunzip: far above
 * real files (one [Parts] line per file of a disc: tens of thousands at most), enough for 3 million
 * [Parts] lines of real length (~75 bytes), and below V8's longest string (~512M characters), so no
 * decoding step can fail obscurely. What the text costs in memory stays near its size (see PartTable).
 */
export const MAX_JIGDO_TEXT_BYTES = 256 << 20;
/** A line longer than this is no .jigdo line (even Info= is read only up to 5,000 characters, spec §4.3). */
const MAX_LINE_BYTES = 1 << 20;
/** [Include] directives followed in all: a fan-out of includes would otherwise read a file again and again. */
const MAX_INCLUDES = 100;
/** [Servers] lines kept in all (real files have a few dozen). */
const MAX_SERVER_LINES = 10_000;
/** [Image] sections kept (real files have one; jigdo-lite shows a menu of them): each costs an object. */
export const MAX_IMAGES = 1000;
/** Warnings kept for `info` and the logs; the rest are counted. */
const MAX_WARNINGS = 100;

const MIB = 1 << 20;
const GZIP_CHUNK = 64 << 10;

const isGzip = (bytes: Buffer): boolean => bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;

/** Gunzips as a stream (Debian names gzipped files `.jigdo`, spec §4.1): the caller stops it at its limit. */
async function* gunzipped(bytes: Buffer, file: string): AsyncGenerator<Buffer> {
  try {
    yield* gunzipMembers(bytes, GZIP_CHUNK);
  } catch (err) {
    throw new JigdoError(file, `corrupt gzip data: ${errorMessage(err)}`);
  }
}

/** Shared by a .jigdo and all it includes: the limits hold for the whole. */
interface ParseContext {
  loadInclude: IncludeLoader | undefined;
  builder: JigdoBuilder;
  textBytes: number;
  /** The files' own bytes (gzipped ones too), held while their [Include]s are followed: bounded in all as well. */
  fileBytes: number;
  includes: number;
}

/** The text of one file in chunks (gunzipped when gzip), counted against the limit of the whole. */
async function* textChunks(bytes: Buffer, file: string, ctx: Pick<ParseContext, 'textBytes'>): AsyncGenerator<Buffer> {
  const gzip = isGzip(bytes);
  for await (const chunk of gzip ? gunzipped(bytes, file) : [bytes]) {
    ctx.textBytes += chunk.length;
    if (ctx.textBytes > MAX_JIGDO_TEXT_BYTES) {
      const what = gzip ? 'once gunzipped, ' : '';
      throw new JigdoError(file, `too big for a .jigdo: ${what}more than ${MAX_JIGDO_TEXT_BYTES / MIB} MiB of text with its [Include]s`);
    }
    yield chunk;
  }
}

/**
 * NUL or other control bytes mean we were handed a binary (an ISO, random data...), not a .jigdo. Bytes
 * that are not UTF-8 are not binary: jigdo-file writes names as bytes (Latin-1, MacRoman, CP437 names of
 * old discs); they are kept as escaped bytes (byte-string.ts).
 */
const BINARY = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/;
/** The first line of every jigdo template (jigdo-file and libjte): given where a .jigdo belongs. */
const TEMPLATE_MAGIC = 'JigsawDownload template';

function decodeLine(buf: Buffer, start: number, end: number, file: string, lineNo: number): string {
  if (end - start > MAX_LINE_BYTES) throw new JigdoError(file, `not a .jigdo file: line ${lineNo} is longer than ${MAX_LINE_BYTES / MIB} MiB`);
  const text = decodeBytes(buf, start, end);
  if (lineNo === 1 && text.startsWith(TEMPLATE_MAGIC)) throw new JigdoError(file, 'not a .jigdo file: this is a jigdo template (give the .jigdo that names it)');
  if (BINARY.test(text)) throw new JigdoError(file, `not a .jigdo file: binary data on line ${lineNo}`);
  return text;
}

/**
 * Each line of one file's text (gunzipped when gzip), decoded and checked (decodeLine), given to `take` with its number,
 * read a chunk at a time: nothing but the line at hand is held. A promise `take` returns is waited for before the next
 * line (an [Include], followed in place).
 */
async function eachLine(bytes: Buffer, file: string, ctx: Pick<ParseContext, 'textBytes'>, take: (line: string, lineNo: number) => Promise<void> | undefined): Promise<void> {
  let lineNo = 0;
  let rest: Buffer | undefined;
  for await (const chunk of textChunks(bytes, file, ctx)) {
    const buf = rest ? Buffer.concat([rest, chunk]) : chunk;
    let start = 0;
    for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10, start)) {
      const waited = take(decodeLine(buf, start, nl, file, ++lineNo), lineNo);
      if (waited) await waited;
      start = nl + 1;
    }
    rest = start < buf.length ? buf.subarray(start) : undefined;
    if (rest && rest.length > MAX_LINE_BYTES) decodeLine(rest, 0, rest.length, file, lineNo + 1); // throws: too long
  }
  if (rest) await take(decodeLine(rest, 0, rest.length, file, ++lineNo), lineNo);
}

/**
 * Streams one file's lines into the builder, following its [Include]s in place. Nothing but the line at
 * hand is held: no array of lines or events, whatever the size of the file.
 */
async function feedFile(bytes: Buffer, loc: Location, ctx: ParseContext, stack: string[]): Promise<void> {
  const parser = new ConfigLineParser();
  // Only an [Include] waits for anything: every other line is handled without a promise of its own.
  await eachLine(bytes, describeLocation(loc), ctx, (line, lineNo) => {
    const event = parser.line(line, lineNo);
    if (event?.type === 'include') return followInclude(event, loc, ctx, stack);
    if (event) ctx.builder.apply(event, loc);
    return undefined;
  });
}

/** One [Include]: read and fed in place, ending the current section before and after (spec §4.3). */
async function followInclude(event: { url: string; line: number }, loc: Location, ctx: ParseContext, stack: string[]): Promise<void> {
  const where = `${describeLocation(loc)}: line ${event.line}`;
  const target = resolveReference(event.url, loc);
  if (!target) throw new JigdoError(where, `[Include ${quoted(event.url)}] may not read local files from a remote .jigdo`);
  const id = describeLocation(target);
  if (stack.includes(id)) throw new JigdoError(where, `loop of [Include] directives (${quoted(id)})`);
  if (stack.length >= MAX_INCLUDE_DEPTH) throw new JigdoError(where, 'too many nested [Include] directives');
  if (++ctx.includes > MAX_INCLUDES) throw new JigdoError(where, `more than ${MAX_INCLUDES} [Include] directives in all`);
  // An [Include] that cannot be read only costs the mirrors it would add: warn, do not fail
  // (jigdo-file and jigdo-lite ignore [Include] altogether).
  let included: Buffer | undefined;
  try {
    included = ctx.loadInclude ? await ctx.loadInclude(target) : undefined;
  } catch (err) {
    ctx.builder.warn(`${where}: cannot read [Include ${quoted(event.url)}]: ${errorMessage(err)}`);
  }
  if (!included) return;
  // Each file's bytes stay held while its [Include]s are followed: with gzip, little of each counts as text before
  // its next [Include], and 16 nested ones of 64 MiB held 1.1 GB.
  ctx.fileBytes += included.length;
  if (ctx.fileBytes > MAX_JIGDO_TEXT_BYTES) throw new JigdoError(where, `too big for a .jigdo: more than ${MAX_JIGDO_TEXT_BYTES / MIB} MiB of files with its [Include]s`);
  ctx.builder.apply({ type: 'section', name: 'Include', line: event.line }, loc);
  await feedFile(included, target, ctx, [...stack, id]);
  ctx.builder.apply({ type: 'section', name: 'Include', line: event.line }, loc);
}

/** Filename/Template are written unquoted even with spaces: split, then join with one space (spec §4.2). */
const joinedWords = (raw: string): string => splitWords(raw).join(' ');

/** Weight from GTK jigdo's `--try-first[=w]` / `--try-last[=w]` options; other words are ignored. */
function weightOf(words: string[]): number {
  if (words.length === 1) return 0;
  let weight = 0;
  for (const word of words.slice(1)) {
    const m = /^--try-(first|last)(?:=(.*))?$/.exec(word);
    if (!m) continue;
    const w = m[2] === undefined ? 1 : Number(m[2]);
    if (Number.isFinite(w)) weight += m[1] === 'first' ? w : -w;
  }
  return weight;
}

function parseVersion(raw: string, file: string): { major: number; minor: number } {
  const m = /^(\d+)\.(\d+)$/.exec(splitWords(raw)[0] ?? '');
  if (!m) throw new JigdoError(file, `[Jigdo] Version=${quoted(raw)} is not of the form MAJOR.MINOR`);
  const version = { major: Number(m[1]), minor: Number(m[2]) };
  if (version.major > MAX_KNOWN_MAJOR) {
    throw new JigdoError(file, `needs a newer jigdo program: format version ${quoted(raw)} (this one knows ${MAX_KNOWN_MAJOR}.x)`);
  }
  return version;
}

/**
 * Filename= is where the image is written (make-image) or shown (mount). The spec lets it carry a
 * `stdio:` prefix and folders (libjte writes the raw `-o` name; the GTK jigdo keeps the leaf name), so
 * the leaf after the last `/` is the name, and it must be a plain file name: not empty, `.` or `..`
 * (`Filename=..` or `a/b/..` would write to the parent folder), and short enough for a file system.
 */
function checkFilename(name: string, where: string): string {
  const leaf = name.replace(/^stdio:/, '').split('/').pop()!;
  if (leaf === '' || leaf === '.' || leaf === '..' || Buffer.byteLength(leaf) > 255) {
    throw new JigdoError(where, `Filename=${quoted(name)} is not a plain file name to write the image to`);
  }
  return name;
}

/** Turns the events of a .jigdo and its [Include]s into the model, as they stream in. */
class JigdoBuilder {
  readonly images: JigdoImage[] = [];
  readonly parts: PartTable;
  readonly servers = new Map<string, JigdoValue[]>();
  readonly warnings: string[] = [];
  readonly kinds = new Set<ChecksumKind>();
  version: { major: number; minor: number } | undefined;
  generator: string | undefined;
  private image: Partial<JigdoImage> | undefined;
  private serverLines = 0;
  private imageSections = 0;
  private unwarned = 0;

  constructor(home: Location) {
    this.parts = new PartTable(home);
  }

  warn(line: string): void {
    if (this.warnings.length < MAX_WARNINGS) this.warnings.push(elided(line)); // (a line may quote a huge value whole)
    else this.unwarned++;
  }

  apply(event: ConfigEvent, from: Location): void {
    if (event.type === 'section') {
      this.closeImage();
      // Beyond the limit a section's lines are dropped: 382 KB of gzip held 32 million "[Image]" lines (2.9 GB).
      if (event.name === 'Image' && ++this.imageSections <= MAX_IMAGES) this.image = {};
      else if (event.name === 'Image' && this.imageSections === MAX_IMAGES + 1) this.warn(`${describeLocation(from)}: line ${event.line}: ignored [Image] sections: more than ${MAX_IMAGES}`);
      return;
    }
    if (event.type === 'ignored') return this.warn(`${describeLocation(from)}: line ${event.line}: ignored ${event.why}`);
    if (event.type !== 'entry') return;
    const where = (): string => `${describeLocation(from)}: line ${event.line}`;
    if (event.section === 'Parts') this.addPart(event.label, event.rawValue, from, where);
    else if (event.section === 'Servers') this.addServer(event.label, event.rawValue, from, where);
    else if (event.section === 'Image' && this.image) this.addImageEntry(this.image, event.label, event.rawValue, where());
    else if (event.section === 'Jigdo') {
      if (event.label === 'Version') this.version = parseVersion(event.rawValue, where());
      else if (event.label === 'Generator') this.generator = event.rawValue.trim();
    }
  }

  private addImageEntry(image: Partial<JigdoImage>, label: string, rawValue: string, where: string): void {
    if (label === 'Filename') image.filename = checkFilename(joinedWords(rawValue), where);
    else if (label === 'Template') image.template = joinedWords(rawValue);
    else if (label === 'ShortInfo') image.shortInfo = rawValue.trim().slice(0, 200);
    else if (label === 'Info') image.info = rawValue.trim().slice(0, 5000);
    else if (label === 'Template-MD5Sum' || label === 'Template-SHA256Sum') {
      const md5 = label === 'Template-MD5Sum';
      const value = splitWords(rawValue)[0] ?? '';
      const sum = decodeB64(value, md5 ? 16 : 32);
      if (!sum) throw new JigdoError(where, `${label}=${quoted(value)} is not a valid jigdo-base64 checksum`);
      if (md5) image.templateMd5 = sum;
      else image.templateSha256 = sum;
    }
  }

  private addPart(label: string, rawValue: string, from: Location, where: () => string): void {
    const kind = kindOfKey(label);
    const words = splitWords(rawValue);
    if (!kind || words.length === 0) {
      this.warn(`${where()}: ignored [Parts] line with ${kind ? 'no value' : `bad checksum "${quoted(label)}"`}`);
      return;
    }
    this.kinds.add(kind);
    if (!this.parts.add(label, words[0]!, weightOf(words), from)) {
      this.warn(`${where()}: ignored [Parts] line: more than ${MAX_VALUES_PER_PART} lines for ${quoted(label)}`);
    }
  }

  private addServer(label: string, rawValue: string, from: Location, where: () => string): void {
    // An empty value stands for the empty string, as in jigdo-file: `E=` then `F=E:f` makes F `f`.
    const words = splitWords(rawValue);
    if (++this.serverLines > MAX_SERVER_LINES) {
      this.warn(`${where()}: ignored [Servers] line: more than ${MAX_SERVER_LINES} in all`);
      return;
    }
    const list = this.servers.get(label) ?? [];
    list.push({ uri: words[0] ?? '', weight: weightOf(words), base: from });
    this.servers.set(label, list);
  }

  private closeImage(): void {
    if (this.image) this.images.push(this.image as JigdoImage);
    this.image = undefined;
  }

  finish(loc: Location): JigdoFile {
    const file = describeLocation(loc);
    this.closeImage();
    if (this.unwarned > 0) this.warnings.push(`${file}: ${this.unwarned} more lines ignored (warnings not shown)`);
    const usable = this.images.filter((img) => img.filename && img.template);
    if (usable.length === 0) {
      throw new JigdoError(file, this.images.length ? '[Image] section lacks Filename or Template' : 'no [Image] section (not a .jigdo file?)');
    }
    if (this.kinds.size > 1) throw new JigdoError(file, '[Parts] mixes MD5 and SHA-256 keys');
    const { version, generator, parts, servers, warnings } = this;
    const checksumKind: ChecksumKind =
      [...this.kinds][0] ?? (version && version.major >= 2 ? 'sha256' : usable[0]!.templateSha256 && !usable[0]!.templateMd5 ? 'sha256' : 'md5');
    return { location: loc, version: version ?? { major: 1, minor: 0 }, generator, images: usable, parts, servers, checksumKind, warnings };
  }
}

/**
 * A file to merge a new image into (make-template --merge): its lines, gunzipped, each checked as parseJigdo checks them
 * (not binary, not a template) and without its CR; and the checksum kind its Version or [Parts] keys say, if they say
 * one. Not read as a whole .jigdo: a file of [Servers] lines is one to start from, and an empty Template-MD5Sum= one to
 * fill.
 */
export async function jigdoToMerge(bytes: Buffer, loc: Location): Promise<{ lines: string[]; kind?: ChecksumKind }> {
  const file = describeLocation(loc);
  const parser = new ConfigLineParser();
  const kinds = new Set<ChecksumKind>();
  const lines: string[] = [];
  await eachLine(bytes, file, { textBytes: 0 }, (text, lineNo) => {
    const line = text.replace(/\r$/, '');
    lines.push(line);
    const event = parser.line(line, lineNo);
    if (event?.type !== 'entry') return undefined;
    const kind = event.section === 'Parts' ? kindOfKey(event.label) : undefined;
    if (kind) kinds.add(kind);
    if (event.section === 'Jigdo' && event.label === 'Version') kinds.add(parseVersion(event.rawValue, `${file}: line ${lineNo}`).major >= 2 ? 'sha256' : 'md5');
    return undefined;
  });
  if (kinds.size > 1) throw new JigdoError(file, 'its Version and [Parts] keys are not all of one checksum kind');
  const [kind] = kinds;
  return { lines, ...(kind ? { kind } : {}) };
}

/**
 * Parses a .jigdo file (plain or gzipped) with its [Include]s. `loc` is where it was read from: relative
 * references are resolved against it.
 */
export async function parseJigdo(bytes: Buffer, loc: Location, loadInclude?: IncludeLoader): Promise<JigdoFile> {
  const ctx: ParseContext = { loadInclude, builder: new JigdoBuilder(loc), textBytes: 0, fileBytes: bytes.length, includes: 0 };
  await feedFile(bytes, loc, ctx, [describeLocation(loc)]);
  return ctx.builder.finish(loc);
}
