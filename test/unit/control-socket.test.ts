// The mount daemon's control socket (src/fuse/control.ts): one request line per connection, of bounded length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { askControl, checkedControlDir, controlSocketPath, serveControl, type ControlRequest } from '../../src/fuse/control.js';

/** What a raw client gets back for sending `data` (the connection kept open until the server ends it). */
function exchange(file: string, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(file, () => socket.write(data));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('end', () => {
      socket.destroy();
      resolve(text);
    });
    socket.on('error', reject);
    setTimeout(() => {
      socket.destroy();
      reject(new Error('the server never ended the connection'));
    }, 5000).unref();
  });
}

test('a request line that never ends, or one too long, is answered "bad request"; one line is one request', async () => {
  const runtime = mkdtempSync(path.join(tmpdir(), 'jigdofs-control-'));
  chmodSync(runtime, 0o700);
  const saved = process.env.XDG_RUNTIME_DIR;
  process.env.XDG_RUNTIME_DIR = runtime;
  const seen: ControlRequest[] = [];
  const mnt = path.join(runtime, 'mnt');
  const server = await serveControl(mnt, async (request) => {
    seen.push(request);
    return 'pong';
  });
  try {
    const file = controlSocketPath(mnt, checkedControlDir(false)!);
    assert.equal(await askControl(mnt, 'ping'), 'pong');
    const endless = await exchange(file, 'x'.repeat(1 << 20));
    assert.deepEqual(JSON.parse(endless), { error: 'bad request' });
    // A request, then more lines on the same connection: answered once, the rest not taken as requests.
    const twice = await exchange(file, `${JSON.stringify({ op: 'ping' })}\n${JSON.stringify({ op: 'status' })}\n`);
    assert.deepEqual(JSON.parse(twice), { result: 'pong' });
    assert.deepEqual(seen.map((r) => r.op), ['ping', 'ping']);
  } finally {
    server.close();
    if (saved === undefined) delete process.env.XDG_RUNTIME_DIR;
    else process.env.XDG_RUNTIME_DIR = saved;
    rmSync(runtime, { recursive: true, force: true });
  }
});
