/** The discfs fuzz target (test/fuzz/targets/discfs.ts) and its seeds: each seed is a real image the reader lists. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { listDisc } from '../../src/discfs/index.js';
import target, { compact, expand } from '../fuzz/targets/discfs.js';

const corpus = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fuzz/corpus/discfs');

test('every seed is a disc image the target lists; halves and flipped bytes end cleanly', async () => {
  const seeds = await readdir(corpus);
  assert.ok(seeds.length >= 4);
  for (const name of seeds) {
    const input = await readFile(path.join(corpus, name));
    assert.ok(input.length < 32 * 1024, `${name} is small`);
    await target.run(input);
    const { blocks, size } = expand(input);
    const image = Buffer.alloc(size);
    for (const [i, b] of blocks) b.copy(image, i * 512);
    assert.ok(compact(image).equals(input), `${name}: compact(expand(x)) = x`);
    const listing = await listDisc(async (o, l) => image.subarray(o, o + l), size);
    if (!name.startsWith('mkudffs')) assert.ok(listing.files.length >= 2, `${name}: lists its files`);
    for (const variant of [input.subarray(0, input.length >> 1), Buffer.from(input).fill(0x41, 600, 700)]) {
      await target.run(variant).catch((e: unknown) => assert.ok(target.isCleanError(e), String(e)));
    }
  }
});
