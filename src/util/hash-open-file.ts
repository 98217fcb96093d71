import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

/** The `kind` checksum of an open file's bytes from where it stands to its end, read on this thread a MiB at a time. */
export async function hashOpenFile(fh: FileHandle, kind: string): Promise<Buffer> {
  const hash = createHash(kind);
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let n; (n = (await fh.read(buf, 0, buf.length, null)).bytesRead) > 0; ) hash.update(buf.subarray(0, n));
  return hash.digest();
}
