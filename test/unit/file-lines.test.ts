/**
 * fileLinesAt: a file's lines a chunk at a time, lines across chunks joined, overlong ones skipped, each with where it
 * begins, the same whether the chunks are read into new buffers or into one.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileLinesAt } from '../../src/util/file-lines.js';

let work: string;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-file-lines-'));
});
after(() => rm(work, { recursive: true, force: true }));

async function linesOf(text: string, from: number, maxLine: number): Promise<string[]> {
  const file = path.join(work, 'f');
  await writeFile(file, text);
  const fh = await open(file, 'r');
  try {
    let out: string[] | undefined;
    for (const reuse of [false, true]) {
      const at: string[] = [];
      for await (const [l, offset] of fileLinesAt(fh, from, maxLine, reuse)) {
        const line = l.toString('latin1');
        assert.equal(text.slice(offset, offset + line.length), line, `the line said to begin at ${offset} (reuse: ${reuse})`);
        assert.ok(offset === from || text[offset - 1] === '\n', `${offset} follows a newline`);
        at.push(line);
      }
      if (out) assert.deepEqual(at, out, 'the same lines read into one buffer as into new ones');
      out = at;
    }
    return out!;
  } finally {
    await fh.close();
  }
}

test('lines from an offset; empty lines kept; a last line without a newline given', async () => {
  assert.deepEqual(await linesOf('head\na\n\nbc\nd', 5, 100), ['a', '', 'bc', 'd']);
  assert.deepEqual(await linesOf('a\n', 0, 100), ['a']);
  assert.deepEqual(await linesOf('', 0, 100), []);
});

test('lines that cross the 1 MiB chunks are joined whole, however many chunks they span', async () => {
  const long = 'x'.repeat((1 << 20) * 2 + 17);
  const lines = ['first', 'y'.repeat((1 << 20) - 3), long, 'last'];
  assert.deepEqual(await linesOf(lines.join('\n'), 0, 8 << 20), lines);
});

test('a line longer than maxLine is skipped, within a chunk or across chunks, and the next line read', async () => {
  assert.deepEqual(await linesOf('ok\n12345678901\nnext\n', 0, 10), ['ok', 'next']);
  assert.deepEqual(await linesOf(`ok\n${'z'.repeat(3 << 20)}\nnext`, 0, 1 << 20), ['ok', 'next']);
  assert.deepEqual(await linesOf(`ok\n${'z'.repeat(3 << 20)}`, 0, 1 << 20), ['ok'], 'an overlong last line without a newline');
  assert.deepEqual(await linesOf('1234567890\n', 0, 10), ['1234567890'], 'exactly maxLine is kept');
});

test('maxLine counts the bytes carried from the chunk before: exactly maxLine across a chunk boundary is kept, one more skipped', async () => {
  const max = (1 << 20) + 100;
  const at = (1 << 20) - 50; // the line starts 50 bytes before the first chunk ends
  const head = 'h'.repeat(at - 1);
  assert.deepEqual((await linesOf(`${head}\n${'a'.repeat(max)}\nnext`, 0, max)).map((l) => l.length), [at - 1, max, 4]);
  assert.deepEqual((await linesOf(`${head}\n${'a'.repeat(max + 1)}\nnext`, 0, max)).map((l) => l.length), [at - 1, 4]);
  // Past maxLine only with what the chunk before carried (50 bytes in each chunk, 100 in all).
  assert.deepEqual((await linesOf(`${head}\n${'a'.repeat(100)}\nnext`, 0, 80)).map((l) => l.length), [4]);
  // Exactly maxLine carried to the chunk's end, its newline the next chunk's first byte: kept.
  assert.deepEqual((await linesOf(`${'h'.repeat((1 << 20) - 1001)}\n${'a'.repeat(1000)}\nnext`, 0, 1000)).map((l) => l.length), [1000, 4]);
});

