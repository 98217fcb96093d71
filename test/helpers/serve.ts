/**
 * Runs `jigdofs serve` (the built CLI) as a child process on 127.0.0.1 with an ephemeral port, and talks to
 * it with real HTTP clients: node's http module here, curl / wget / qemu-img in the tests.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { promisify } from 'node:util';
import { BIN, runCli } from './cli.js';
import { waitFor } from './network.js';
import { asUser, type TestUser } from './test-user.js';

export const execFileP = promisify(execFile);

export interface TestServer {
  url: string;
  port: number;
  proc: ChildProcess;
  /** Everything the server wrote to stderr so far. */
  log(): string;
  /** `jigdofs status URL --json`. */
  status(): Promise<ServeStatus>;
  /** Sends `signal` and resolves with the exit code once the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface ServeStatus {
  server: { requests: number; activeClients: number; maxConnections: number; connectionsDropped: number; bytesSent: number; aborted: number; clientsGone: number; timedOut: number; byStatus: Record<string, number>; draining: boolean };
  images: Array<{ name: string; bytesServed: number; parts: { byProvider: Record<string, number> } }>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

/** Starts `jigdofs serve ARGS --port 0` (as `user`, with its `env`, if given) and waits for its "serving" line. */
export async function startServe(args: string[], opts: { env?: NodeJS.ProcessEnv; user?: TestUser } = {}): Promise<TestServer> {
  const argv = [BIN, 'serve', ...args, '--port', '0'];
  const [file, fileArgs] = opts.user ? asUser(opts.user, process.execPath, argv) : [process.execPath, argv];
  const proc = spawn(file, fileArgs, {
    env: opts.env ?? { ...process.env, JIGDOFS_DEBUG: '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  running.add(proc);
  let err = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => { running.delete(proc); resolve(code); }));
  // (127.0.0.1 unless the args give another --host: 0.0.0.0 or [::], every interface)
  const serving = /serving (http:\/\/(?:127\.0\.0\.1|0\.0\.0\.0|\[::\]):(\d+)\/)/;
  await waitFor(() => serving.test(err) || proc.exitCode !== null, 30_000, `jigdofs serve to listen:\n${err}`);
  const m = serving.exec(err);
  if (!m) throw new Error(`jigdofs serve did not start:\n${err}`);
  return {
    url: m[1]!,
    port: Number(m[2]),
    proc,
    log: () => err,
    status: async () => {
      const r = await runCli(['status', m[1]!, '--json'], opts.user ? { user: opts.user, env: opts.env } : {});
      if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`);
      return JSON.parse(r.stdout) as ServeStatus;
    },
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null) proc.kill(signal);
      return exited;
    },
  };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The connection ended before Content-Length bytes came. */
  cut: boolean;
}

/** One request with node's http client; a body cut short is reported, not thrown. */
export function httpGet(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let cut = false;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('aborted', () => (cut = true));
      res.on('error', () => (cut = true));
      res.on('close', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), cut: cut || !res.complete }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Splits a multipart/byteranges body into its parts' Content-Range and bytes. */
export function parseMultipart(body: Buffer, contentType: string): Array<{ range: string; type: string; data: Buffer }> {
  const boundary = /boundary=([^;]+)/.exec(contentType)?.[1];
  if (!boundary) throw new Error(`no boundary in ${contentType}`);
  const out: Array<{ range: string; type: string; data: Buffer }> = [];
  const delim = Buffer.from(`--${boundary}`);
  let at = body.indexOf(delim);
  while (at >= 0) {
    const headStart = at + delim.length;
    if (body.subarray(headStart, headStart + 2).toString() === '--') break;
    const headEnd = body.indexOf('\r\n\r\n', headStart);
    const head = body.subarray(headStart, headEnd).toString('latin1');
    const range = /Content-Range: bytes (\d+)-(\d+)\/\d+/i.exec(head);
    if (!range) throw new Error(`part without Content-Range: ${head}`);
    const start = headEnd + 4;
    const len = Number(range[2]) - Number(range[1]) + 1;
    out.push({ range: `${range[1]}-${range[2]}`, type: /Content-Type: (\S+)/i.exec(head)?.[1] ?? '', data: body.subarray(start, start + len) });
    at = body.indexOf(delim, start + len);
  }
  return out;
}
