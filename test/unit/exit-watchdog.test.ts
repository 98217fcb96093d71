/**
 * The exit watchdog (src/util/exit-watchdog.ts) must kill a daemon that does not end, even when the daemon's stderr
 * leads nowhere any more: a spare daemon's output goes through a relay (src/cli/spare-daemon.ts), and a relay that was
 * killed made the watchdog's own message kill the watchdog (SIGPIPE) before its kill.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const MODULE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/util/exit-watchdog.ts');

test('a process that does not end is killed after the grace time, though its stderr is a pipe nobody reads', { timeout: 30_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jigdofs-watchdog-'));
  try {
    const script = path.join(dir, 'stuck.mjs');
    // Arms a 1 s watchdog, then never ends (as a daemon whose exit waits on a hung file system).
    await writeFile(script, `import { armExitWatchdog } from ${JSON.stringify(MODULE)};\narmExitWatchdog('stuck', 'the test', 1);\nsetInterval(() => undefined, 1000);\n`);
    const reader = spawn('cat', [], { stdio: ['pipe', 'ignore', 'ignore'] });
    const stuck = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'ignore', reader.stdin] });
    reader.stdin!.destroy();
    reader.kill('SIGKILL'); // the pipe's reader is gone before the watchdog speaks
    const ended = await new Promise<NodeJS.Signals | number | null>((resolve) => {
      const timer = setTimeout(() => resolve('still running after 15 s' as never), 15_000);
      stuck.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve(signal ?? code);
      });
    });
    if (stuck.exitCode === null && stuck.signalCode === null) stuck.kill('SIGKILL');
    assert.equal(ended, 'SIGKILL');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
