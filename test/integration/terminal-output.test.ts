// Terminal control sequences from a hostile .jigdo or template never reach the terminal (the audit's repro): ESC,
// CSI as the C1 character U+009B (the UTF-8 bytes C2 9B, which a UTF-8 terminal takes as ESC [), DEL, a carriage return
// that overwrites the line, an OSC window title in the template's header line. `info` text and a usage error show them
// escaped; `info --json` keeps the values exact (JSON escapes controls itself).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SAMPLES, assertOk, describeRun, runCli, type CliResult } from '../helpers/cli.js';

const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-terminal-'));
after(() => rmSync(work, { recursive: true, force: true }));
let runs = 0;
const cli = (args: string[]): Promise<CliResult> => runCli([...args, '--cache-dir', path.join(work, `cache-${++runs}`), '--offline'], { timeoutMs: 30_000 });

/** C0 but the newline, DEL, C1, or a byte that was not UTF-8 (decoded as U+FFFD): none may reach the terminal. */
const TERMINAL_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\ufffd]/;

const JIGDO = Buffer.from(
  '[Jigdo]\nVersion=1.2\nGenerator=gen\x7f\xc2\x9b31mRED\rOVERWRITE\n[Image]\nFilename=ima\rge\xc2\x9b2J.iso\nTemplate=hostile.template\n' +
    'ShortInfo=Hello\rEVIL \xc2\x9b2J\x7f\n[Servers]\nA\rB=http://x/\xc2\x9b\n[Parts]\nP6D_Q1IkDFd5tl9ZIOws9A=A:p1\n',
  'latin1',
);
/** The sample template with an SGR colour, an OSC window title and a C1 CSI on its header line. */
function hostileTemplate(): Buffer {
  const template = readFileSync(path.join(SAMPLES, 'jf-md5-gzip.template'));
  const eol = template.indexOf('\r\n');
  return Buffer.concat([template.subarray(0, eol), Buffer.from(' \x1b[31mRED\x1b]0;TITLE\x07\xc2\x9b2J', 'latin1'), template.subarray(eol)]);
}

async function hostileJigdo(): Promise<string> {
  await writeFile(path.join(work, 'hostile.template'), hostileTemplate());
  const file = path.join(work, 'a.jigdo');
  await writeFile(file, JIGDO);
  return file;
}

test('info text shows every .jigdo and template value with its terminal controls escaped', async () => {
  const r = await cli(['info', await hostileJigdo()]);
  assertOk(r);
  assert.doesNotMatch(r.stdout, TERMINAL_CONTROL, describeRun(r));
  const lines = r.stdout.split('\n');
  for (const expected of [
    'Image:        ima\\x0dge\\u009b2J.iso',
    'ShortInfo:    Hello\\x0dEVIL \\u009b2J\\x7f',
    '.jigdo:       version 1.2, gen\\x7f\\u009b31mRED\\x0dOVERWRITE, ',
    '  A\\x0dB=http://x/\\u009b',
    ', "JigsawDownload template 1.2 jigdo-file/0.8.0 \\x1b[31mRED\\x1b]0;TITLE\\x07\u00c2\\u009b2J"',
  ]) assert.ok(lines.some((l) => l.includes(expected)), `no line has ${expected}:\n${describeRun(r)}`);
});

test('info --json keeps the values exact', async () => {
  const r = await cli(['info', await hostileJigdo(), '--json']);
  assertOk(r);
  const info = JSON.parse(r.stdout) as { filename: string; shortInfo: string; template: { header: string }; jigdo: { generator: string } };
  assert.equal(info.filename, 'ima\rge\u009b2J.iso');
  assert.equal(info.shortInfo, 'Hello\rEVIL \u009b2J\u007f');
  assert.equal(info.jigdo.generator, 'gen\u007f\u009b31mRED\rOVERWRITE');
  assert.ok(info.template.header.endsWith(' \u001b[31mRED\u001b]0;TITLE\u0007\u00c2\u009b2J'), info.template.header);
});

test("a usage error that lists the .jigdo's image names escapes their terminal controls", async () => {
  const r = await cli(['info', await hostileJigdo(), '--image', 'nope']);
  assert.equal(r.code, 2, describeRun(r));
  assert.doesNotMatch(r.stderr, TERMINAL_CONTROL, describeRun(r));
  assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, describeRun(r));
  assert.ok(r.stderr.includes('has no image named "nope" (it has: ima\\x0dge\\u009b2J.iso)'), describeRun(r));
});

test("make-image's list of missing parts and its log lines escape the .jigdo's paths and the mirrors' URLs", async () => {
  await writeFile(path.join(work, 'hostile.template'), hostileTemplate());
  const file = path.join(work, 'missing.jigdo');
  const text = JIGDO.toString('latin1').replace('A\rB=http://x/\xc2\x9b', 'A=http://127.0.0.1:9/\xc2\x9d0;T').replace('=A:p1', '=A:p1\xc2\x9b2J');
  await writeFile(file, Buffer.from(text, 'latin1'));
  const r = await runCli(['make-image', file, '-o', path.join(work, 'out.iso'), '--cache-dir', path.join(work, `cache-${++runs}`), '--retries', '0'], { timeoutMs: 30_000 });
  assert.equal(r.code, 1, describeRun(r));
  assert.doesNotMatch(r.stderr, TERMINAL_CONTROL, describeRun(r));
  assert.ok(r.stderr.includes('A:p1\\u009b2J'), describeRun(r));
  // Without -o the output is named by the .jigdo's Filename.
  const named = await runCli(['make-image', file, '--cache-dir', path.join(work, `cache-${++runs}`), '--retries', '0'], { timeoutMs: 30_000, cwd: work });
  assert.equal(named.code, 1, describeRun(named));
  assert.doesNotMatch(named.stderr, TERMINAL_CONTROL, describeRun(named));
  assert.ok(named.stderr.includes('ima\\x0dge\\u009b2J.iso: not written'), describeRun(named));
});
