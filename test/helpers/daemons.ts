/**
 * Real servers from Debian's packages (nginx, squid) run in the foreground for a test: started on a free loopback
 * port, waited for, and stopped at the end (stopDaemons).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { waitFor } from './network.js';
import { httpGet } from './serve.js';

const procs: ChildProcess[] = [];

/** A loopback port free now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Starts a daemon in the foreground and waits until its port answers HTTP (any status); its log is shown if it exits. */
export async function startDaemon(cmd: string, args: string[], port: number, logFile: string): Promise<ChildProcess> {
  const p = spawn(cmd, args, { stdio: 'ignore' });
  procs.push(p);
  await waitFor(async () => {
    if (p.exitCode !== null) throw new Error(`${cmd} exited ${p.exitCode}: ${await readFile(logFile, 'utf8').catch(() => '')}`);
    return httpGet(`http://127.0.0.1:${port}/`).then(() => true, () => false);
  }, 30_000, `${cmd} on port ${port}`);
  return p;
}

/** Stops a daemon: nginx with SIGTERM (it waits for its workers, which a SIGKILL left running as orphans), up to 5 s, then SIGKILL. */
export async function stopDaemon(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill(p.spawnargs[0] === 'nginx' ? 'SIGTERM' : 'SIGKILL');
  const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Stops every daemon startDaemon started. */
export async function stopDaemons(): Promise<void> {
  await Promise.all(procs.splice(0).map((p) => stopDaemon(p)));
}
