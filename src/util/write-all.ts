import type { FileHandle } from 'node:fs/promises';

/**
 * Writes all of `data` at `position`. One `FileHandle.write` is one write(2), which may write less than asked with no
 * error (a disk that fills up, a file size limit): the rest was dropped, and a file short of its end was renamed into
 * place as complete (the hash index: invalid JSON, which every process then read as empty). The next write of the
 * rest gets the error.
 */
export async function writeAll(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0) throw new Error(`nothing written at byte ${position + done}`);
    done += bytesWritten;
  }
}
