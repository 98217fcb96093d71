/**
 * The fuzz harness (test/fuzz/run.ts) in CI: first that it catches what it is for (a hang, a crash, memory
 * over the cap, an unclean error: broken targets in test/fuzz/self-test/), then a bounded deterministic run
 * of every parser target (the http target runs the built `serve` from dist/).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runFuzz } from '../fuzz/run.js';

const work = mkdtempSync(path.join(tmpdir(), 'jigdofs-fuzz-test-'));
after(() => rmSync(work, { recursive: true, force: true }));
const SELF = path.join(import.meta.dirname, '..', 'fuzz', 'self-test');
const quiet = (): void => undefined;

test('the harness reports a hang, a crash, memory over the cap and an unclean error, each with its input saved', { timeout: 120_000 }, async () => {
  const crashDir = path.join(work, 'self');
  const r = await runFuzz({ targetsDir: SELF, corpusDir: path.join(SELF, 'corpus'), crashDir, cases: 8, timeoutMs: 3000, memoryMb: 300, log: quiet });
  const kinds = Object.fromEntries(r.failures.map((f) => [f.target, f.kind]));
  assert.deepEqual(kinds, { crash: 'crash', hang: 'hang', memory: 'memory', unclean: 'unclean' });
  assert.equal(r.failures.length, 4);
  const first = { crash: 'Crash', hang: 'Hang', memory: 'Mem', unclean: 'Unclean' } as Record<string, string>;
  for (const f of r.failures) {
    assert.equal(readFileSync(f.file, 'latin1'), first[f.target], `${f.target}: the saved input`);
    assert.ok(readFileSync(`${f.file}.txt`, 'utf8').length > 0);
  }
  assert.match(r.failures.find((f) => f.kind === 'unclean')!.problem, /TypeError: not clean/);
  for (const name of ['crash', 'hang', 'memory', 'unclean']) assert.equal(r.cases.get(name), 2, `${name}: both seeds ran (a new child after a kill)`);
});

test('every parser target: 2,000 deterministic cases (seed 1) find no crash, hang, memory over the cap or unclean error', { timeout: 180_000 }, async () => {
  const lines: string[] = [];
  const r = await runFuzz({ cases: 2000, seconds: 60, seed: 1, crashDir: path.join(work, 'parsers'), log: (l) => lines.push(l) });
  assert.deepEqual(r.failures.map((f) => `${f.target} ${f.kind}: ${f.problem.slice(0, 300)}`), []);
  for (const name of ['config', 'http', 'jigdo', 'template']) assert.ok((r.cases.get(name) ?? 0) >= 100, `${name}: ${r.cases.get(name)} cases\n${lines.join('\n')}`);
  process.stderr.write(`${lines.join('\n')}\n`);
});
