/**
 * `mount.fuse.jigdofs`: the helper mount(8) runs for `mount -t fuse.jigdofs JIGDO MOUNTPOINT -o OPTIONS` and for
 * an /etc/fstab line of type `fuse.jigdofs` (install it as /sbin/mount.fuse.jigdofs: see docs/fstab.md). It runs
 * `jigdofs mount JIGDO MOUNTPOINT` with the options the `-o` list stands for, and returns when the image is
 * readable (or with mount's one-line reason), as mount(8) expects of a helper.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../format/errors.js';
import { parseHelperArgs } from './fstab-options.js';

function helperMain(argv: string[]): Promise<number> {
  let call;
  try {
    call = parseHelperArgs(argv, (line) => process.stderr.write(`mount.fuse.jigdofs: ${line}\n`));
  } catch (err) {
    process.stderr.write(`mount.fuse.jigdofs: ${errorMessage(err)}\n`);
    return Promise.resolve(2);
  }
  if (call.fake) return Promise.resolve(0);
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const child = spawn(process.execPath, [main, 'mount', call.source, call.mountpoint, ...call.flags], { stdio: 'inherit' });
  return new Promise((resolve) => {
    child.on('error', (err) => {
      process.stderr.write(`mount.fuse.jigdofs: ${err.message}\n`);
      resolve(1);
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

void helperMain(process.argv.slice(2)).then((code) => process.exit(code));
