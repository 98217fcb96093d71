/**
 * Runs as another user (started by actor.ts through setpriv) and does file system calls for a test process
 * that cannot: a private FUSE mount answers only its own user, not even root. One JSON request per line on
 * stdin, one JSON answer per line on stdout (`{id, value}` or `{id, error: {code, message}}`); requests may
 * overlap. Ends when stdin closes.
 */
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';

export interface AgentRequest {
  id: number;
  op: 'readdir' | 'stat' | 'open' | 'read' | 'close';
  path?: string;
  flags?: string;
  fd?: number;
  length?: number;
  position?: number;
}

const handles = new Map<number, FileHandle>();
let nextFd = 1;

function file(fd: number | undefined): FileHandle {
  const fh = handles.get(fd ?? -1);
  if (!fh) throw new Error(`no open file ${fd}`);
  return fh;
}

async function serve(r: AgentRequest): Promise<unknown> {
  switch (r.op) {
    case 'readdir':
      return readdir(r.path!);
    case 'stat': {
      const st = await stat(r.path!);
      return { size: st.size, mode: st.mode, uid: st.uid, isFile: st.isFile() };
    }
    case 'open': {
      const fd = nextFd++;
      handles.set(fd, await open(r.path!, r.flags ?? 'r'));
      return fd;
    }
    case 'read': {
      const buf = Buffer.alloc(r.length!);
      const { bytesRead } = await file(r.fd).read(buf, 0, r.length!, r.position!);
      return buf.subarray(0, bytesRead).toString('base64');
    }
    case 'close':
      await file(r.fd).close();
      handles.delete(r.fd!);
      return null;
  }
}

// Only ever run as a script (actor.ts imports its types alone).
createInterface({ input: process.stdin }).on('line', (line) => {
  const r = JSON.parse(line) as AgentRequest;
  const answer = (a: object) => process.stdout.write(`${JSON.stringify({ id: r.id, ...a })}\n`);
  serve(r).then(
    (value) => answer({ value }),
    (err: NodeJS.ErrnoException) => answer({ error: { code: err.code, message: err.message } }),
  );
});
