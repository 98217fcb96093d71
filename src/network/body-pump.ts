import type { Dispatcher } from 'undici';
import type { BatchWriter } from './batch-writer.js';
import { HeadCheck, tooLarge, type BodyRules } from './body-rules.js';
import { FetchError } from './fetch-error.js';

/**
 * The slowest body we wait for: undici's body timeout only fires on silence, so a mirror sending a byte
 * now and then would hold a part forever. Averaged over a whole timeout period.
 */
export const MIN_BYTES_PER_SECOND = 1024;

/**
 * The trickle rule for one body: fails it ('slow') when it averages under MIN_BYTES_PER_SECOND over a whole
 * `timeoutMs`, measured from its first byte on in windows of that length. Shared by pumpBody (undici) and the
 * fetch threads (raw-http/range-exchange.ts).
 */
export class PaceCheck {
  private windowStart = performance.now();
  private windowBytes = 0;

  constructor(
    private readonly url: string,
    private readonly timeoutMs: number,
  ) {}

  /**
   * `bytes` more arrived; throws the 'slow' FetchError when the window that just ended was a trickle. The next window
   * starts either way: a caller that goes on after a slow window (a download across requests) has the next one judged.
   */
  add(bytes: number): void {
    this.windowBytes += bytes;
    const elapsed = performance.now() - this.windowStart;
    if (elapsed < this.timeoutMs) return;
    const bytesIn = this.windowBytes;
    this.windowStart += elapsed;
    this.windowBytes = 0;
    if ((bytesIn * 1000) / elapsed < MIN_BYTES_PER_SECOND) {
      throw new FetchError(this.url, 'slow', `too slow: ${bytesIn} bytes in ${(elapsed / 1000).toFixed(0)} s`);
    }
  }
}

/**
 * Writes the body through `out` up to position `stop` (what comes after is not read); returns the position
 * reached. Fails a body slower than MIN_BYTES_PER_SECOND over a whole `timeoutMs` ('slow'), and one that
 * breaks `rules` ('refused').
 */
export async function pumpBody(
  url: string,
  body: Dispatcher.ResponseData['body'],
  out: BatchWriter,
  stop: number,
  rules: BodyRules,
  timeoutMs: number,
): Promise<number> {
  const head = rules.magic && out.pos === 0 ? new HeadCheck(url, rules) : undefined;
  const max = rules.maxBytes ?? Infinity;
  const pace = new PaceCheck(url, timeoutMs);
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      pace.add(chunk.length);
      head?.add(chunk);
      const room = stop - out.end;
      const data = chunk.length > room ? chunk.subarray(0, room) : chunk;
      if (out.end + data.length > max) throw tooLarge(url, rules);
      await out.add(data);
      if (out.end >= stop) break;
    }
    head?.end();
  } finally {
    await out.flush(); // what arrived before an error is written too: a resume starts after it
  }
  return out.pos;
}
