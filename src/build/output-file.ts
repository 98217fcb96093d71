import { stat } from 'node:fs/promises';
import { fsPath } from '../format/byte-string.js';
import { JigdoError } from '../format/errors.js';

/**
 * Refuses an output make-image must not replace: a folder, a device, a pipe or a socket (a rename would put a file in
 * its place: `-o /dev/null` as root), an input of the run itself (the template, the .jigdo), and, unless `force`, any
 * file that exists already, as jigdo-file refuses it ("already exists - delete it or use --force"). The image
 * replaces the output by a rename only once its checksum matched, so a refused or failed run leaves it as it was.
 */
export async function checkOutput(output: string, inputs: ReadonlyArray<{ what: string; path: string }>, force: boolean): Promise<void> {
  const st = await stat(fsPath(output)).catch(() => undefined);
  if (!st) return;
  if (st.isDirectory()) throw new JigdoError(output, 'is a directory: not written');
  if (!st.isFile()) throw new JigdoError(output, 'is not a regular file (a device, a pipe or a socket): not written');
  for (const input of inputs) {
    const s = await stat(fsPath(input.path)).catch(() => undefined);
    if (s && s.dev === st.dev && s.ino === st.ino) throw new JigdoError(output, `is the ${input.what} this image is made from: not written`);
  }
  if (!force) throw new JigdoError(output, 'exists already: not written (remove it, or use --force to replace it)');
}
