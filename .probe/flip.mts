import { readFileSync, writeFileSync, mkdtempSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadJigdo, openImage, selectImage } from '../src/image/open.ts';
import { makeImage } from '../src/build/make-image.ts';
import { JigdoError } from '../src/format/errors.ts';
const S = '/work/main/test/fixtures/samples';
const name = process.argv[2] ?? 'jf-md5-gzip';
const t = readFileSync(`${S}/${name}.template`);
const dir = mkdtempSync(path.join(tmpdir(), 'flip-'));
const jtext = readFileSync(`${S}/${name}.jigdo`, 'utf8').replace(/^Template-(MD5|SHA256)Sum=.*$/m, '');
writeFileSync(`${dir}/x.jigdo`, jtext);
let seed = 12345;
const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
const counts: Record<string, number> = {};
const imageMd5 = '784af77770a40eb11678baaea6484bff';
for (let i = 0; i < 200; i++) {
  const c = Buffer.from(t);
  const pos = rnd() % c.length;
  c[pos] ^= 1 << (rnd() % 8);
  const tp = `${dir}/t${i}.template`;
  writeFileSync(tp, c);
  const out = `${dir}/out${i}.iso`;
  let k: string;
  try {
    const jigdo = await loadJigdo(`${dir}/x.jigdo`);
    const s = await openImage(jigdo, selectImage(jigdo), { local: [], scan: [`${S}/parts`], cacheDir: `${dir}/cache`, memory: 64 << 20, log: () => {}, template: tp });
    try {
      const r = await makeImage(s, out);
      if (r.missing.length) k = 'missing';
      else k = createHash('md5').update(readFileSync(out)).digest('hex') === imageMd5 ? 'ok-correct' : 'WRONG';
    } finally { await s.close(); }
  } catch (e) {
    k = (e instanceof JigdoError ? 'J:' + e.problem : 'E:' + (e as Error).constructor.name + ':' + (e as Error).message).replace(/\d+/g, 'N').slice(0, 120);
  }
  counts[k] = (counts[k] ?? 0) + 1;
}
console.log(counts);
process.exit(0);
