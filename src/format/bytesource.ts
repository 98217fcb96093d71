import { open, type FileHandle } from 'node:fs/promises';
import { fsPath, shown } from './byte-string.js';

/** Random-access bytes: what the template and .tmp parsers read from. */
export interface ByteSource {
  readonly name: string;
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

/** A local file opened for positional reads; `read` never returns fewer bytes than asked without failing. */
export class FileByteSource implements ByteSource {
  private constructor(
    readonly name: string,
    readonly size: number,
    private readonly handle: FileHandle,
  ) {}

  static async open(path: string): Promise<FileByteSource> {
    const handle = await open(fsPath(path), 'r');
    try {
      const st = await handle.stat();
      // open(2) succeeds on a folder and only read(2) fails, with a message that names no file.
      if (st.isDirectory()) throw Object.assign(new Error('is a directory, not a file'), { code: 'EISDIR' });
      return new FileByteSource(path, st.size, handle);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** The open file's status (fstat): what is read, whatever the name leads to now. */
  stat(): Promise<import('node:fs').Stats> {
    return this.handle.stat();
  }

  /** The open file's descriptor (for a check of exactly what is read: /proc/self/fd/N). */
  get fd(): number {
    return this.handle.fd;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) throw new Error(`${shown(this.name)}: unexpected end of file at byte ${offset + done}`);
      done += bytesRead;
    }
    return buf;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** Bytes already in memory (tests, small downloads). */
export class BufferByteSource implements ByteSource {
  constructor(
    readonly name: string,
    private readonly bytes: Buffer,
  ) {}
  get size(): number {
    return this.bytes.length;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset + length > this.bytes.length) throw new Error(`${this.name}: unexpected end of file at byte ${this.bytes.length}`);
    return this.bytes.subarray(offset, offset + length);
  }
}
