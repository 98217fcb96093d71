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
