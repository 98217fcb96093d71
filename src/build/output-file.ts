import { link, rename, stat, unlink } from 'node:fs/promises';
import { fsPath } from '../format/byte-string.js';
import { JigdoError, errorMessage } from '../format/errors.js';

/**
 * Refuses an output make-image (or make-template: `made` says what the inputs make) must not replace: a folder, a device, a pipe or a socket (a rename would put a file in
 * its place: `-o /dev/null` as root), an input of the run itself (the template, the .jigdo), and, unless `force`, any
 * file that exists already, as jigdo-file refuses it ("already exists - delete it or use --force"). The image
 * replaces the output by a rename only once its checksum matched, so a refused or failed run leaves it as it was.
 */
export async function checkOutput(output: string, inputs: ReadonlyArray<{ what: string; path: string }>, force: boolean, made = 'this image is made from'): Promise<void> {
  const st = await stat(fsPath(output)).catch(() => undefined);
  if (!st) return;
  if (st.isDirectory()) throw new JigdoError(output, 'is a directory: not written');
  if (!st.isFile()) throw new JigdoError(output, 'is not a regular file (a device, a pipe or a socket): not written');
  for (const input of inputs) {
    const s = await stat(fsPath(input.path)).catch(() => undefined);
    if (s && s.dev === st.dev && s.ino === st.ino) throw new JigdoError(output, `is the ${input.what} ${made}: not written`);
  }
  if (!force) throw new JigdoError(output, 'exists already: not written (remove it, or use --force to replace it)');
}

/**
 * Gives the finished temporary image `tmp` the name `output`. Unless `force`, never over a file that appeared meanwhile
 * (another make-image of the same output, started at the same time: both passed checkOutput, and the one that ended
 * last replaced the other's with a plain rename, both saying "wrote"): a link, which fails if the name is taken, then
 * the temporary name's removal. Where links do not work (FAT, some network file systems): the check, then a rename.
 */
export async function placeOutput(tmp: string, output: string, force: boolean): Promise<void> {
  const taken = (): never => {
    throw new JigdoError(output, 'was written meanwhile (by another run?): not replaced');
  };
  const cannot = (err: unknown): never => {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') taken();
    throw new JigdoError(output, `cannot write: ${errorMessage(err)}`);
  };
  if (force) return void (await rename(fsPath(tmp), fsPath(output)).catch(cannot));
  const linked = await link(fsPath(tmp), fsPath(output)).then(
    () => true,
    (err: NodeJS.ErrnoException) => (err.code === 'EEXIST' ? taken() : false),
  );
  if (linked) return void (await unlink(fsPath(tmp)).catch(() => undefined));
  if (await stat(fsPath(output)).then(() => true, () => false)) taken();
  await rename(fsPath(tmp), fsPath(output)).catch(cannot);
}
