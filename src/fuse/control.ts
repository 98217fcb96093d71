import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * The control channel of a running mount: a Unix socket named after the mountpoint, answering one JSON
 * request per connection (`status`, `unmount`). A socket rather than a file inside the mount: its answers
 * change all the time, which the kernel's page cache (kernelCache) would otherwise serve stale.
 */
export function controlSocketPath(mnt: string): string {
  const base = process.env.XDG_RUNTIME_DIR || tmpdir();
  const dir = path.join(base, 'jigdofs');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return path.join(dir, `${createHash('sha256').update(path.resolve(mnt)).digest('hex').slice(0, 24)}.sock`);
}

export type ControlHandler = (request: { op: string }) => Promise<unknown>;

export async function serveControl(mnt: string, handler: ControlHandler): Promise<Server> {
  const file = controlSocketPath(mnt);
  await rm(file, { force: true });
  const server = createServer((socket) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      text += d;
      if (!text.includes('\n')) return;
      let request: { op: string };
      try {
        request = JSON.parse(text.slice(0, text.indexOf('\n'))) as { op: string };
      } catch {
        socket.end(`${JSON.stringify({ error: 'bad request' })}\n`);
        return;
      }
      handler(request).then(
        (result) => socket.end(`${JSON.stringify({ result })}\n`),
        (err: unknown) => socket.end(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`),
      );
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => resolve());
  });
  server.unref();
  return server;
}

/** Sends one request to the mount at `mnt`; rejects when no daemon answers within `timeoutMs`. */
export function askControl(mnt: string, op: string, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(controlSocketPath(mnt));
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from the jigdofs daemon of ${mnt}`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify({ op })}\n`));
    socket.on('data', (d: string) => (text += d));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`no jigdofs daemon for ${mnt} (${(err as NodeJS.ErrnoException).code ?? err.message})`));
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        const reply = JSON.parse(text) as { result?: unknown; error?: string };
        if (reply.error) reject(new Error(reply.error));
        else resolve(reply.result);
      } catch {
        reject(new Error(`garbled answer from the jigdofs daemon of ${mnt}`));
      }
    });
  });
}
