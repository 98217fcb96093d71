/**
 * jigdo's ConfigFile line syntax (spec §4.2), shared by every .jigdo reader. Turns lines into events so
 * that the .jigdo model can apply [Include] in place and merge repeated sections.
 */

export type ConfigEvent =
  | { type: 'section'; name: string; line: number }
  | { type: 'include'; url: string; line: number }
  | { type: 'entry'; section: string; label: string; rawValue: string; line: number }
  /** A section line jigdo-file refuses (it warns, and the section before it goes on). */
  | { type: 'ignored'; why: string; line: number };

const isBlank = (ch: string | undefined): boolean => ch === ' ' || ch === '\t';

const PLAIN_WORD = /^[^ \t#'"\\]+$/;

/** Splits a value into words the way ConfigFile::split does (shell-like quoting, `#` ends the value). */
export function splitWords(value: string): string[] {
  // The common case (one plain word, as in nearly every [Parts] line) at once.
  if (PLAIN_WORD.test(value)) return [value];
  const words: string[] = [];
  // A word's pieces, joined once when it ends: appending piece by piece builds a chain of V8 cons strings, ~35 bytes
  // per piece, kept as they are in the part table (a 200 KB gzipped .jigdo of quoted values ran out of memory).
  let pieces: string[] = [];
  let inWord = false; // `''` must still yield an (empty) word
  const endWord = (): void => {
    if (inWord) words.push(pieces.join(''));
    pieces = [];
    inWord = false;
  };
  let i = 0;
  const n = value.length;
  while (i < n) {
    const ch = value[i]!;
    if (isBlank(ch)) {
      endWord();
      i++;
    } else if (ch === '#') {
      break;
    } else if (ch === "'") {
      inWord = true;
      const end = value.indexOf("'", i + 1);
      pieces.push(value.slice(i + 1, end < 0 ? n : end));
      i = end < 0 ? n : end + 1;
    } else if (ch === '"') {
      inWord = true;
      i++;
      while (i < n && value[i] !== '"') {
        if (value[i] === '\\') {
          if (i + 1 < n) pieces.push(value[i + 1]!); // a lone backslash at the end is dropped, as jigdo-file does
          i += 2;
          continue;
        }
        const end = runEnd(value, i, '"\\');
        pieces.push(value.slice(i, end));
        i = end;
      }
      i++;
    } else if (ch === '\\') {
      inWord = true;
      if (i + 1 < n) pieces.push(value[i + 1]!);
      i += 2;
    } else {
      inWord = true;
      const end = runEnd(value, i, "#'\"\\ \t");
      pieces.push(value.slice(i, end));
      i = end;
    }
  }
  endWord();
  return words;
}

/** Where the run of characters from `i` that are none of `stops` ends (at least one character long). */
function runEnd(value: string, i: number, stops: string): number {
  let end = i + 1;
  while (end < value.length && !stops.includes(value[end]!)) end++;
  return end;
}

/**
 * `s` without its trailing blanks. Not `replace(/[ \t]+$/, '')`: that regex retries from every blank of a
 * run that does not end the string, so a line of a million blanks inside a label took minutes (found by
 * test/fuzz, the config target).
 */
function trimBlanksEnd(s: string): string {
  let end = s.length;
  while (end > 0 && isBlank(s[end - 1])) end--;
  return s.slice(0, end);
}

const SECTION_NAME_END = /[\]\s[=#]/;

/**
 * The line-by-line state of jigdo's ConfigFile syntax (current section, inside a [Comment]). Fed one line
 * at a time, so a huge .jigdo is parsed as it streams in, never held as an array of lines or events.
 */
export class ConfigLineParser {
  private section = '';
  private inComment = false;

  /** The event of one line (without its `\n`), or undefined for blank, comment and unknown lines. Never throws. */
  line(raw: string, lineNo: number): ConfigEvent | undefined {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const body = line.replace(/^[ \t]+/, '');
    if (body.startsWith('[')) return this.sectionLine(body, lineNo);
    if (this.inComment || body === '' || body.startsWith('#')) return undefined;
    const eq = body.indexOf('=');
    if (eq < 0) return undefined;
    return {
      type: 'entry',
      section: this.section,
      label: trimBlanksEnd(body.slice(0, eq)),
      rawValue: body.slice(eq + 1).replace(/^[ \t]+/, ''),
      line: lineNo,
    };
  }

  private sectionLine(body: string, lineNo: number): ConfigEvent | undefined {
    this.inComment = false;
    const inner = body.slice(1).replace(/^[ \t]+/, '');
    const nameEnd = inner.search(SECTION_NAME_END);
    const name = nameEnd < 0 ? inner : inner.slice(0, nameEnd);
    if (name === 'Include' && isBlank(inner[nameEnd])) {
      const close = inner.indexOf(']', nameEnd);
      const url = inner.slice(nameEnd, close < 0 ? undefined : close).trim();
      this.section = 'Include'; // entries after it belong to no real section (spec §4.3)
      return { type: 'include', url, line: lineNo };
    }
    // `[Parts`, `[Parts]junk`, `[Parts=x]`: jigdo-file warns and stays in the section it was in, so must we (the
    // lines after it were taken as another section's).
    const after = inner.slice(name.length).replace(/^[ \t]+/, '');
    if (!after.startsWith(']')) return { type: 'ignored', why: `section line with no "]" after its name`, line: lineNo };
    const tail = after.slice(1).replace(/^[ \t]+/, '');
    if (tail !== '' && !tail.startsWith('#')) return { type: 'ignored', why: `section line with text after its "]"`, line: lineNo };
    this.section = name;
    if (name === 'Comment' || name === 'comment') {
      this.inComment = true;
      return undefined;
    }
    return { type: 'section', name, line: lineNo };
  }
}

/** Parses the text of one small .jigdo-like file into events. Never throws: unknown lines are ignored. */
export function parseConfigText(text: string): ConfigEvent[] {
  const parser = new ConfigLineParser();
  const events: ConfigEvent[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const event = parser.line(lines[index]!, index + 1);
    if (event) events.push(event);
  }
  return events;
}
