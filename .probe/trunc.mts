import { readFileSync } from 'node:fs';
import { BufferByteSource } from '../src/format/bytesource.ts';
import { parseTemplate } from '../src/format/template.ts';
import { JigdoError } from '../src/format/errors.ts';
const t = readFileSync('/work/main/test/fixtures/samples/jf-md5-gzip.template');
const counts: Record<string, number> = {};
for (let n = 0; n < t.length; n++) {
  try { await parseTemplate(new BufferByteSource('x', t.subarray(0, n))); counts.ok = (counts.ok??0)+1; console.log('ok at', n); }
  catch (e) { const k = e instanceof JigdoError ? 'J:' + (e as JigdoError).problem.replace(/\d+/g,'N') : 'OTHER:' + String(e); counts[k] = (counts[k]??0)+1; }
}
console.log(counts);
