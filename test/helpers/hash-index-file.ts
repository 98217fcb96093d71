import { readFile } from 'node:fs/promises';

/** One file's record in the hash index, as far as tests look at it. */
export interface IndexEntry {
  size: number;
  mtimeMs: number;
  sums: Record<string, string>;
}

/**
 * The files a hash index file records, parsed here from its format (version 3: a header line, then one
 * `[path, entry]` line per file), not by the module under test. A missing file records none.
 */
export async function indexFiles(file: string): Promise<Record<string, IndexEntry>> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  if (text === '') return {};
  const [header, ...lines] = text.split('\n');
  if (header !== '{"version":3}') throw new Error(`${file}: not a hash index of version 3: ${String(header).slice(0, 80)}`);
  if (lines.pop() !== '') throw new Error(`${file}: does not end with a newline`);
  return Object.fromEntries(lines.map((l) => JSON.parse(l) as [string, IndexEntry]));
}
