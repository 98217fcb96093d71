import { readFile } from 'node:fs/promises';

/** A device number as sysfs names it, `MAJOR:MINOR` (glibc's encoding of dev_t: major and minor in two pieces each). */
export function majorMinor(dev: number): string {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & 0xfffff000n);
  const minor = (d & 0xffn) | ((d >> 12n) & 0xffffff00n);
  return `${major}:${minor}`;
}

/** The size in bytes of the block device `rdev` (stat says 0 for a device): sysfs counts 512-byte sectors. */
export async function blockDeviceSize(rdev: number, sys = '/sys/dev/block'): Promise<number> {
  const sectors = Number((await readFile(`${sys}/${majorMinor(rdev)}/size`, 'utf8')).trim());
  if (!Number.isSafeInteger(sectors) || sectors < 0) throw new Error(`${sys}/${majorMinor(rdev)}/size: not a size`);
  return sectors * 512;
}

/** The kernel cannot tell one medium of a device from the next: see blockDeviceMedium. */
export class NoDiskSeqError extends Error {
  override name = 'NoDiskSeqError';
}

/**
 * What is in the block device `rdev` now: its size, and a name of the medium that changes whenever another medium is
 * in it (`MAJOR:MINOR#diskseq`). A device node keeps its inode, mtime and ctime when a disc is swapped in its drive or
 * a loop device is given another file, so stat cannot tell; the kernel's disk sequence number (sysfs `diskseq`, Linux
 * 5.15 and later) is new for every loop attach and, in newer kernels, every media change of any drive, and is never
 * reused before a reboot. Read before and after the size, so that both describe one medium. Throws NoDiskSeqError on
 * a kernel without it: the device cannot be used then.
 */
export async function blockDeviceMedium(rdev: number, sys = '/sys/dev/block'): Promise<{ size: number; medium: string }> {
  const dir = `${sys}/${majorMinor(rdev)}`;
  // A partition's medium is its disk's (sysfs resolves the link before `..`: the disk's folder).
  const where = await readFile(`${dir}/partition`).then(() => `${dir}/../diskseq`, () => `${dir}/diskseq`);
  const seq = (): Promise<string> =>
    readFile(where, 'utf8').then(
      (t) => t.trim(),
      (err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        throw new NoDiskSeqError('this kernel does not number the media of a drive (no diskseq in sysfs, before Linux 5.15), so a swapped disc could not be told');
      },
    );
  for (;;) {
    const before = await seq();
    const size = await blockDeviceSize(rdev, sys);
    if ((await seq()) === before) return { size, medium: `${majorMinor(rdev)}#${before}` };
  }
}
