#!/usr/bin/env node
// delay-proxy.mjs — a TCP relay on 127.0.0.1 that holds every chunk DELAY_MS in each direction, for
// benchmarks at a round-trip time of 2 × DELAY_MS where `tc netem` is not available (this kernel has no
// sch_netem). Bytes are passed on in order and unchanged; a full socket pauses the other side (no unbounded
// buffering). Prints the port it listens on, then runs until killed.
//
// Usage: node scripts/delay-proxy.mjs TARGET_PORT DELAY_MS
import net from 'node:net';

const [targetPort, delayMs] = process.argv.slice(2).map(Number);
if (!targetPort || !(delayMs >= 0)) {
  console.error('usage: delay-proxy.mjs TARGET_PORT DELAY_MS');
  process.exit(2);
}

/**
 * Sends what `from` receives to `to`, each chunk DELAY_MS later, in order. Returns the function that takes a
 * chunk received (the 'data' listener, or the onread callback of a socket reading into its own buffer).
 */
function relay(from, to) {
  const queue = [];
  let timer;
  let ended = false;
  let waiting = false; // for `to` to drain (one listener, however many writes were refused)
  const flush = () => {
    timer = undefined;
    const now = Date.now();
    while (queue.length > 0 && queue[0].due <= now) {
      const { chunk } = queue.shift();
      if (!to.write(chunk) && !waiting) {
        waiting = true;
        from.pause();
        to.once('drain', () => {
          waiting = false;
          from.resume();
        });
      }
    }
    if (queue.length > 0) timer = setTimeout(flush, queue[0].due - now);
    else if (ended) to.end();
  };
  from.on('end', () => {
    ended = true;
    timer ??= setTimeout(flush, 0);
  });
  return (chunk) => {
    queue.push({ chunk, due: Date.now() + delayMs });
    timer ??= setTimeout(flush, delayMs);
  };
}

/**
 * Responses are read up to 1 MiB at a time into one reused buffer (copied out, since chunks wait DELAY_MS).
 * The proxy's CPU is taken from the tools it measures: a 120 MB file fetched 40 times through it with curl
 * cost 8.7-9.2 CPU-s with the default 64 KiB reads, 5.5-6.9 CPU-s with these.
 */
const READ_BUFFER = 1 << 20;

const server = net.createServer((client) => {
  let toClient;
  const buffer = Buffer.allocUnsafe(READ_BUFFER);
  const upstream = net.connect({ port: targetPort, host: '127.0.0.1', onread: { buffer, callback: (n) => toClient(Buffer.from(buffer.subarray(0, n))) } });
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  client.on('data', relay(client, upstream));
  toClient = relay(upstream, client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close).on('close', close);
  upstream.on('error', close).on('close', close);
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
