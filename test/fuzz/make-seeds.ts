/**
 * Writes the seed corpus (test/fuzz/corpus/<target>/) from the sample fixtures plus hand-made hostile
 * seeds: gzip and bzip2 bombs, include chains, label fan-outs, non-UTF-8 names. Run once; the output is
 * committed: `node --import tsx test/fuzz/make-seeds.ts`.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { SAMPLES } from '../helpers/cli.js';
import { CORPUS_DIR } from './target.js';

const dir = (name: string): string => {
  const d = path.join(CORPUS_DIR, name);
  mkdirSync(d, { recursive: true });
  return d;
};

function uint48(n: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntLE(n, 0, 6);
  return b;
}

/** A template of one raw-data part (`tag`, claiming `claimed` bytes) whose DESC says the image is those bytes. */
function template(tag: 'DATA' | 'BZIP', payload: Buffer, claimed: number): Buffer {
  const header = Buffer.from('JigsawDownload template 1.2 jigdo-file/0.8.0\r\nSee fuzz seeds\r\n\r\n', 'latin1');
  const part = Buffer.concat([Buffer.from(tag), uint48(16 + payload.length), uint48(claimed), payload]);
  const entries = Buffer.concat([Buffer.from([2]), uint48(claimed), Buffer.from([5]), uint48(claimed), Buffer.alloc(16), Buffer.from([0, 4, 0, 0])]);
  const total = 4 + 6 + entries.length + 6;
  return Buffer.concat([header, part, Buffer.from('DESC'), uint48(total), entries, uint48(total)]);
}

const jigdo = dir('jigdo');
for (const f of ['jf-md5-gzip.jigdo', 'jte-sha256-bzip2.jigdo', 'jte-multipart.jigdo', 'quoting.jigdo']) copyFileSync(path.join(SAMPLES, f), path.join(jigdo, f));
const head = '[Jigdo]\nVersion=1.2\n[Image]\nFilename=image.iso\nTemplate=x.template\n';
writeFileSync(path.join(jigdo, 'include-chain.jigdo'), `${head}[Include b.jigdo]\n[Include c.jigdo]\n[Servers]\nParts=http://127.0.0.1:9/p/\n`);
writeFileSync(path.join(jigdo, 'latin1-names.jigdo'), Buffer.concat([Buffer.from(`${head}[Parts]\nP6D_Q1IkDFd5tl9ZIOws9A=Parts:M`), Buffer.from([0xfc]), Buffer.from('ller.pdf\n[Servers]\nParts=http://127.0.0.1:9/\n')]));
const fan = Array.from({ length: 8 }, (_, i) => Array.from({ length: 8 }, (_, j) => `L${i}=L${i + 1}:${j}/`).join('\n')).join('\n');
writeFileSync(path.join(jigdo, 'label-fan-out.jigdo'), `${head}[Parts]\nP6D_Q1IkDFd5tl9ZIOws9A=L0:a.bin\n[Servers]\n${fan}\nL8=http://127.0.0.1:9/\n`);
// The fan-out in front of a 70 KB value of non-UTF-8 bytes (found by the fuzzer: each of the part's 256 candidates
// carried it, and was percent-encoded and parsed as a URL: seconds a part).
const longValue = Buffer.alloc(70_000, 0xe9);
writeFileSync(path.join(jigdo, 'long-server-value.jigdo'), Buffer.concat([Buffer.from(`${head}[Parts]\nP6D_Q1IkDFd5tl9ZIOws9A=L0:a.bin\n[Servers]\n${fan}\nL8=http://127.0.0.1:9/`), longValue, Buffer.from('/\n')]));

const tpl = dir('template');
for (const f of ['jf-md5-gzip.template', 'jf-sha256-bzip2.template', 'jte-md5-gzip.template']) copyFileSync(path.join(SAMPLES, f), path.join(tpl, f));
const zeros = Buffer.alloc(64 << 20);
const bomb = deflateSync(Buffer.concat([zeros, zeros, zeros, zeros]), { level: 9 }); // 256 MiB of zeros
writeFileSync(path.join(tpl, 'gzip-bomb-memory.template'), template('DATA', bomb, 1 << 20));
writeFileSync(path.join(tpl, 'gzip-bomb-spill.template'), template('DATA', bomb, 20 << 20));
const bz = execFileSync('bzip2', ['-9', '-c'], { input: zeros, maxBuffer: 1 << 30 }); // 64 MiB of zeros
writeFileSync(path.join(tpl, 'bzip2-bomb.template'), template('BZIP', bz, 900_000));

const config = dir('config');
writeFileSync(path.join(config, 'config.ini'), '[cache]\ndir = /tmp/x\nsize = 10G\n[network]\noffline = false\ntimeout = 30\nconnections = 8\nretries = 2\n[mirrors]\nDebian = http://127.0.0.1:9/debian/\nDebian = http://127.0.0.1:9/other/\n');
writeFileSync(path.join(config, 'configfile.txt'), '# comment\n[Section]\nkey = "a b" \'c d\' e\\ f # tail\n[Include x]\nLabel=word --try-first=2\n');

const http = dir('http');
const req = (lines: string[]): string => `${lines.join('\r\n')}\r\n\r\n`;
writeFileSync(path.join(http, 'range.txt'), req(['GET /image.iso HTTP/1.1', 'Host: x', 'Range: bytes=0-99,200-299,-5']));
writeFileSync(path.join(http, 'conditional.txt'), req(['GET /image.iso HTTP/1.1', 'Host: x', 'If-None-Match: "a", W/"b"', 'If-Range: Thu, 01 Jan 1970 00:00:00 GMT', 'Range: bytes=5-', 'If-Match: *']));
writeFileSync(path.join(http, 'head-pipelined.txt'), req(['HEAD / HTTP/1.1', 'Host: x']) + req(['GET /image.iso HTTP/1.1', 'Host: x', 'Range: bytes=1000-2000']));
writeFileSync(path.join(http, 'odd.txt'), req(['GET /%ff%2e%2e/image.iso?x HTTP/1.0', 'Range: bytes=9999999999999999999-', 'Transfer-Encoding: chunked']));
