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

/** Sends what `from` receives to `to`, each chunk DELAY_MS later, in order. */
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
  from.on('data', (chunk) => {
    queue.push({ chunk, due: Date.now() + delayMs });
    timer ??= setTimeout(flush, delayMs);
  });
  from.on('end', () => {
    ended = true;
    timer ??= setTimeout(flush, 0);
  });
}

const server = net.createServer((client) => {
  const upstream = net.connect(targetPort, '127.0.0.1');
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  relay(client, upstream);
  relay(upstream, client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close).on('close', close);
  upstream.on('error', close).on('close', close);
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
