/**
 * HTTP request parsing of `serve`: the header parsers (src/http/range.ts, conditional.ts) on the header
 * values of the input, with their invariants checked (a range lies inside the image, start <= end), and the
 * input sent as raw bytes over a socket to a real `jigdofs serve` (from dist/, on 127.0.0.1) of the sample
 * image: the server must answer (or close) within a few seconds, stay alive, and every 200/206 body it sends
 * must be the image's bytes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseRange, type RangeRequest } from '../../../src/http/range.js';
import { notModified, preconditionFailed, rangeApplies } from '../../../src/http/conditional.js';
import type { ServedImage } from '../../../src/http/served-image.js';
import { SAMPLES, SAMPLE_PARTS } from '../../helpers/cli.js';
import { httpGet, startServe, type TestServer } from '../../helpers/serve.js';

const IMAGE = readFileSync(path.join(SAMPLES, 'image.iso'));
const cacheDir = mkdtempSync(path.join(tmpdir(), 'jigdofs-fuzz-http-'));
process.once('exit', () => rmSync(cacheDir, { recursive: true, force: true }));
let server: TestServer | undefined;

class HttpFuzzError extends Error {}

function checkRanges(r: RangeRequest, size: number, header: string): void {
  if (r.kind !== 'ranges') return;
  for (const { start, end } of r.ranges) {
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start <= end && end < size)) {
      throw new Error(`parseRange(${JSON.stringify(header)}, ${size}) gave ${start}-${end}`);
    }
  }
}

function parsers(text: string): void {
  const headers: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const range = headers['range'] ?? text;
  for (const size of [0, 1, IMAGE.length, 2 ** 53 - 1]) checkRanges(parseRange(range, size), size, range);
  const image = { name: 'image.iso', size: IMAGE.length, etag: '"md5-00"', lastModified: new Date(0), contentType: 'x' } as unknown as ServedImage;
  notModified(headers, image);
  rangeApplies(headers, image);
  preconditionFailed(headers, image);
}

/** Sends the bytes, half-closes, and collects the answer until the server closes (or `ms` pass). */
function rawExchange(port: number, input: Buffer, ms: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new HttpFuzzError(`serve neither answered nor closed the connection within ${ms} ms`));
    }, ms);
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', () => undefined); // a reset is an answer too
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    sock.end(input);
  });
}

/**
 * The first response of an answer: a 200 of the whole image or a single 206 must carry the image's bytes. The answer to
 * a HEAD has none: what follows its headers is the next answer's (a pipelined GET's).
 */
function checkBody(input: Buffer, answer: Buffer): void {
  const headEnd = answer.indexOf('\r\n\r\n');
  if (answer.length === 0 || headEnd < 0 || /^\s*HEAD\s/.test(input.toString('latin1', 0, 64))) return;
  const head = answer.subarray(0, headEnd).toString('latin1');
  if (!head.startsWith('HTTP/1.1 ')) throw new HttpFuzzError(`answer does not start with a status line: ${JSON.stringify(head.slice(0, 80))}`);
  const status = Number(head.slice(9, 12));
  const length = /\r\ncontent-length: (\d+)/i.exec(head);
  const body = answer.subarray(headEnd + 4, headEnd + 4 + Number(length?.[1] ?? 0));
  if (/\r\ncontent-type: multipart/i.test(head) || /transfer-encoding/i.test(head) || !length || body.length < Number(length[1])) return;
  if (status === 200 && body.length === IMAGE.length && !body.equals(IMAGE)) throw new HttpFuzzError('a 200 body differs from the image');
  const cr = /\r\ncontent-range: bytes (\d+)-(\d+)\//i.exec(head);
  if (status === 206 && cr && !body.equals(IMAGE.subarray(Number(cr[1]), Number(cr[2]) + 1))) {
    throw new HttpFuzzError(`a 206 body for ${cr[1]}-${cr[2]} differs from the image`);
  }
}

export default {
  name: 'http',
  async run(input: Buffer): Promise<void> {
    parsers(input.toString('latin1'));
    server ??= await startServe([path.join(SAMPLES, 'jf-md5-gzip.jigdo'), '--local', `Parts=${SAMPLE_PARTS}`, '--cache-dir', cacheDir, '--offline']);
    checkBody(input, await rawExchange(server.port, input, 5000));
    if (server.proc.exitCode !== null || server.proc.signalCode !== null) {
      const log = server.log();
      server = undefined;
      throw new HttpFuzzError(`serve died: ${log.slice(-500)}`);
    }
    const alive = await httpGet(`${server.url}image.iso`, { range: 'bytes=0-15' });
    if (alive.status !== 206 || !alive.body.equals(IMAGE.subarray(0, 16))) throw new HttpFuzzError(`serve no longer answers right: ${alive.status}`);
  },
  isCleanError(): boolean {
    return false; // nothing here may throw: the parsers never do, and serve answers every request
  },
  async close(): Promise<void> {
    await server?.stop();
  },
};
