/**
 * A fetch thread: runs the ranged GETs the main thread hands it (fetch-threads.ts), each body received, hashed
 * and written to its file here, so the main thread sees one message per request and a few per MiB, not one
 * buffer and promise per socket read.
 */
import { parentPort } from 'node:worker_threads';
import { ConnectionPool } from './connections.js';
import type { FromFetchWorker, ToFetchWorker } from './protocol.js';
import { RangeExchange, type ExchangeReport } from './range-exchange.js';

const port = parentPort!;
const pool = new ConnectionPool();
const running = new Map<number, RangeExchange>();

function reporter(id: number): ExchangeReport {
  const post = (m: FromFetchWorker): void => port.postMessage(m);
  return {
    headers: (whole, total) => post({ op: 'headers', id, whole, total }),
    progress: (pos) => post({ op: 'progress', id, pos }),
    done: (r) => {
      running.delete(id);
      post({ op: 'done', id, ...r });
    },
    failed: (kind, message, pos, status, retryAfterMs) => {
      running.delete(id);
      post({ op: 'failed', id, kind, message, status, retryAfterMs, pos });
    },
  };
}

port.on('message', (m: ToFetchWorker) => {
  if (m.op === 'abort') running.get(m.id)?.abort();
  else running.set(m.id, new RangeExchange(m, pool, reporter(m.id)));
});
