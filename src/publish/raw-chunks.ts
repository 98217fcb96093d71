import { spawn } from 'node:child_process';
import { constants, createDeflate, type Deflate } from 'node:zlib';

/**
 * The raw-data parts of a template (spec §2.3), cut as jigdo-file cuts them: gzip (zlib, level 9) parts
 * closed once their compressed output passes 256 KiB; bzip2 parts of exactly 100000*9 - 50 input bytes.
 * Each part is an independent stream. `emit` receives each whole part, header included.
 */
export interface RawChunker {
  write(data: Buffer): Promise<void>;
  finish(): Promise<void>;
}

export type Emit = (part: Buffer) => Promise<void>;

const ZIPCHUNK_SIZE = 256 * 1024;
const BZIP_CHUNK = 100000 * 9 - 50;
/** jigdo-file feeds its compressor in pieces of its read buffer (128 KiB). */
const PIECE = 128 * 1024;

function partHeader(id: 'DATA' | 'BZIP', payloadLength: number, uncompressed: number): Buffer {
  const h = Buffer.alloc(16);
  h.write(id, 0, 'latin1');
  h.writeUIntLE(payloadLength + 16, 4, 6);
  h.writeUIntLE(uncompressed, 10, 6);
  return h;
}

export class GzipChunker implements RawChunker {
  private z: Deflate | undefined;
  private out: Buffer[] = [];
  private outBytes = 0;
  private inBytes = 0;
  private parts = 0;

  constructor(private readonly emit: Emit) {}

  private start(): Deflate {
    const z = createDeflate({ level: 9, windowBits: 15, memLevel: 8 });
    z.on('data', (b: Buffer) => {
      this.out.push(b);
      this.outBytes += b.length;
    });
    return z;
  }

  async write(data: Buffer): Promise<void> {
    for (let at = 0; at < data.length; at += PIECE) {
      const piece = data.subarray(at, Math.min(data.length, at + PIECE));
      const z = (this.z ??= this.start());
      z.write(piece);
      this.inBytes += piece.length;
      await new Promise<void>((r) => z.flush(constants.Z_SYNC_FLUSH, () => r()));
      if (this.outBytes >= ZIPCHUNK_SIZE) await this.close();
    }
  }

  private async close(): Promise<void> {
    const z = this.z;
    if (!z) return;
    this.z = undefined;
    await new Promise<void>((resolve, reject) => {
      z.on('end', resolve);
      z.on('error', reject);
      z.end();
    });
    const payload = Buffer.concat(this.out);
    const part = Buffer.concat([partHeader('DATA', payload.length, this.inBytes), payload]);
    this.out = [];
    this.outBytes = 0;
    this.inBytes = 0;
    this.parts++;
    await this.emit(part);
  }

  async finish(): Promise<void> {
    if (!this.z && this.parts === 0) this.z = this.start(); // jigdo-file writes one empty DATA part then
    await this.close();
  }
}

/** bzip2 -9 of one buffer through the `bzip2` program (Node has no bzip2 compressor). */
function bzip2(data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('bzip2', ['-9', '-c'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', (e) => reject(new Error(`cannot run bzip2: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`bzip2 failed: ${err.trim() || `exit ${code}`}`))));
    child.stdin.on('error', () => undefined); // reported by close
    child.stdin.end(data);
  });
}

export class BzipChunker implements RawChunker {
  private buf = Buffer.allocUnsafe(BZIP_CHUNK);
  private used = 0;

  constructor(private readonly emit: Emit) {}

  async write(data: Buffer): Promise<void> {
    for (let at = 0; at < data.length; ) {
      const n = Math.min(BZIP_CHUNK - this.used, data.length - at);
      data.copy(this.buf, this.used, at, at + n);
      this.used += n;
      at += n;
      if (this.used === BZIP_CHUNK) await this.close();
    }
  }

  private async close(): Promise<void> {
    if (this.used === 0) return;
    const payload = await bzip2(this.buf.subarray(0, this.used));
    await this.emit(Buffer.concat([partHeader('BZIP', payload.length, this.used), payload]));
    this.used = 0;
  }

  finish(): Promise<void> {
    return this.close();
  }
}
