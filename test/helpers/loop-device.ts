/**
 * Read-only loop devices for the `--scan DEVICE` tests: a disc image file behind /dev/loopN stands for a disc in its
 * drive (the kernel needs no iso9660 driver: jigdofs reads the disc's structures itself). Root only. Every device
 * attached here is detached by detachAll() (a test file's `after`) and, as a last resort, when the process exits,
 * also after a failing test.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Loop devices attached by this process and not detached yet. */
const attached = new Set<string>();
let exitHook = false;

/** Why the loop device tests cannot run here, or false when they can (root, losetup). */
export function loopUnavailable(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (losetup)';
  try {
    execFileSync('losetup', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'needs losetup (util-linux)';
  }
  return false;
}

/**
 * Attaches `file` read-only to a free loop device, or to `device` (to swap the medium of the same node); returns the
 * device's path.
 */
export async function attachLoop(file: string, device?: string): Promise<string> {
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const d of attached) {
        try {
          execFileSync('losetup', ['-d', d], { stdio: 'ignore' });
        } catch {
          // gone already
        }
      }
    });
  }
  const args = device ? ['--read-only', '--show', device, file] : ['--find', '--show', '--read-only', file];
  const dev = (await execFileP('losetup', args)).stdout.trim();
  attached.add(dev);
  return dev;
}

/** Detaches a loop device attached by attachLoop (the disc taken out of its drive). */
export async function detachLoop(device: string): Promise<void> {
  attached.delete(device);
  await execFileP('losetup', ['-d', device]);
}

/** Detaches every loop device this process attached and still has. */
export async function detachAll(): Promise<void> {
  for (const d of [...attached]) await detachLoop(d).catch(() => undefined);
}

/**
 * Another disc in the drive while it is in use: the read-only loop device `device` reads `file` from now on (the
 * kernel's LOOP_CHANGE_FD, which exists for this: a live CD's loop device; `file` must have the same size). A device
 * in use cannot be detached (the detach waits for the last close), so a swap under a reader needs this; perl makes
 * the ioctl (perl-base is in every Debian system).
 */
export async function changeLoopFile(device: string, file: string): Promise<void> {
  const script = 'open(my $d, "<", $ARGV[0]) or die "$ARGV[0]: $!"; open(my $f, "<", $ARGV[1]) or die "$ARGV[1]: $!"; ioctl($d, 0x4C06, fileno($f)) or die "LOOP_CHANGE_FD: $!\\n"';
  await execFileP('perl', ['-e', script, device, file]);
}

/** The loop device takes the size its file has now (`losetup --set-capacity`): a disc that shrinks, or is taken out (0 bytes). */
export async function resizeLoop(device: string): Promise<void> {
  await execFileP('losetup', ['--set-capacity', device]);
}
