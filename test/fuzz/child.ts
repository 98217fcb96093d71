/**
 * The fuzz child: runs the cases the parent sends ({ id, target, input }) one at a time and answers
 * { id, verdict }. A crash or hang of a case kills only this process; the parent watches its time and memory
 * (run.ts) and starts a new child for the cases that follow.
 */
import { errorMessage } from '../../src/format/errors.js';
import { loadTargets, type FuzzTarget } from './target.js';

interface CaseMessage {
  id: number;
  target: string;
  input: Buffer | Uint8Array;
}

const dir = process.argv[2];
const targets = await loadTargets(dir);

async function runCase(t: FuzzTarget, input: Buffer): Promise<string | undefined> {
  try {
    await t.run(input);
    return undefined;
  } catch (e) {
    if (t.isCleanError(e)) return undefined;
    return `unclean error: ${e instanceof Error ? (e.stack ?? e.message) : errorMessage(e)}`;
  }
}

process.on('message', (msg: CaseMessage | 'exit') => {
  if (msg === 'exit') {
    void Promise.all([...targets.values()].map((t) => t.close?.().catch(() => undefined))).then(() => process.exit(0));
    return;
  }
  const t = targets.get(msg.target);
  const input = Buffer.from(msg.input);
  const done = (problem: string | undefined): void => {
    process.send?.({ id: msg.id, problem, rss: process.memoryUsage().rss });
  };
  if (!t) done(`no target ${msg.target}`);
  else void runCase(t, input).then(done);
});
process.send?.({ ready: true, targets: [...targets.keys()] });
