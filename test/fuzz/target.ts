import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** A fuzz target: `run` feeds one input to a parser; a thrown error must be one `isCleanError` accepts. */
export interface FuzzTarget {
  name: string;
  run(input: Buffer): Promise<void>;
  isCleanError(e: unknown): boolean;
  /** Optional: releases what the target set up once (a server, a worker pool); called when the child ends. */
  close?(): Promise<void>;
}

export const TARGETS_DIR = path.join(import.meta.dirname, 'targets');
export const CORPUS_DIR = path.join(import.meta.dirname, 'corpus');

/** The targets of a folder (every `*.ts` file's default export), by name. */
export async function loadTargets(dir = TARGETS_DIR): Promise<Map<string, FuzzTarget>> {
  const targets = new Map<string, FuzzTarget>();
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.ts')).sort()) {
    const mod = (await import(pathToFileURL(path.join(dir, file)).href)) as { default?: FuzzTarget };
    const t = mod.default;
    if (!t || typeof t.name !== 'string' || typeof t.run !== 'function' || typeof t.isCleanError !== 'function') {
      throw new Error(`${path.join(dir, file)}: the default export is not a fuzz target { name, run, isCleanError }`);
    }
    targets.set(t.name, t);
  }
  return targets;
}

/** An error message fit for a user: one line, not empty, not absurdly long. */
export function isOneLine(message: string): boolean {
  return message.length > 0 && message.length <= 4096 && !/[\n\r]/.test(message);
}
