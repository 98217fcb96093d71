/**
 * jigdo's ConfigFile line syntax (spec §4.2), shared by every .jigdo reader. Turns lines into events so
 * that the .jigdo model can apply [Include] in place and merge repeated sections.
 */

export type ConfigEvent =
  | { type: 'section'; name: string; line: number }
  | { type: 'include'; url: string; line: number }
  | { type: 'entry'; section: string; label: string; rawValue: string; line: number };

const isBlank = (ch: string | undefined): boolean => ch === ' ' || ch === '\t';

const PLAIN_WORD = /^[^ \t#'"\\]+$/;

/** Splits a value into words the way ConfigFile::split does (shell-like quoting, `#` ends the value). */
export function splitWords(value: string): string[] {
  // The common case (one plain word, as in nearly every [Parts] line) without building it char by char:
  // a char-by-char string is a chain of V8 cons strings, many times the size of its text.
  if (PLAIN_WORD.test(value)) return [value];
  const words: string[] = [];
  let word = '';
  let inWord = false; // `''` must still yield an (empty) word
  let i = 0;
  const n = value.length;
  while (i < n) {
    const ch = value[i]!;
    if (isBlank(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else if (ch === '#') {
      break;
    } else if (ch === "'") {
      inWord = true;
      const end = value.indexOf("'", i + 1);
      word += value.slice(i + 1, end < 0 ? n : end);
      i = end < 0 ? n : end + 1;
    } else if (ch === '"') {
      inWord = true;
      i++;
      while (i < n && value[i] !== '"') {
        if (value[i] === '\\' && i + 1 < n) i++;
        word += value[i];
        i++;
      }
      i++;
    } else if (ch === '\\') {
      inWord = true;
      if (i + 1 < n) word += value[i + 1];
      i += 2;
    } else {
      inWord = true;
      // A run of ordinary characters at once: appending char by char builds a long chain of cons strings.
      let end = i + 1;
      while (end < n && !isBlank(value[end]) && !"#'\"\\".includes(value[end]!)) end++;
      word += value.slice(i, end);
      i = end;
    }
  }
  if (inWord) words.push(word);
  return words;
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
