/**
 * jigdo's ConfigFile line syntax (spec §4.2), shared by every .jigdo reader. Produces a flat list of
 * events so that the .jigdo model can apply [Include] in place and merge repeated sections.
 */

export type ConfigEvent =
  | { type: 'section'; name: string; line: number }
  | { type: 'include'; url: string; line: number }
  | { type: 'entry'; section: string; label: string; rawValue: string; line: number };

const isBlank = (ch: string | undefined): boolean => ch === ' ' || ch === '\t';

/** Splits a value into words the way ConfigFile::split does (shell-like quoting, `#` ends the value). */
export function splitWords(value: string): string[] {
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
      word += ch;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

const SECTION_NAME_END = /[\]\s[=#]/;

/** Parses the text of one .jigdo-like file into events. Never throws: unknown lines are ignored. */
export function parseConfigText(text: string): ConfigEvent[] {
  const events: ConfigEvent[] = [];
  let section = '';
  let inComment = false;
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    let line = lines[index]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const body = line.replace(/^[ \t]+/, '');
    const lineNo = index + 1;
    if (body.startsWith('[')) {
      inComment = false;
      const inner = body.slice(1).replace(/^[ \t]+/, '');
      const nameEnd = inner.search(SECTION_NAME_END);
      const name = nameEnd < 0 ? inner : inner.slice(0, nameEnd);
      if (name === 'Include' && isBlank(inner[nameEnd])) {
        const close = inner.indexOf(']', nameEnd);
        const url = inner.slice(nameEnd, close < 0 ? undefined : close).trim();
        events.push({ type: 'include', url, line: lineNo });
        section = 'Include'; // entries after it belong to no real section (spec §4.3)
        continue;
      }
      if (name === 'Comment' || name === 'comment') {
        inComment = true;
        section = name;
        continue;
      }
      section = name;
      events.push({ type: 'section', name, line: lineNo });
      continue;
    }
    if (inComment || body === '' || body.startsWith('#')) continue;
    const eq = body.indexOf('=');
    if (eq < 0) continue;
    events.push({
      type: 'entry',
      section,
      label: body.slice(0, eq).replace(/[ \t]+$/, ''),
      rawValue: body.slice(eq + 1).replace(/^[ \t]+/, ''),
      line: lineNo,
    });
  }
  return events;
}
