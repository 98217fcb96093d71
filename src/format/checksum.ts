import { decodeB64, encodeB64 } from './base64.js';

/** The two checksum kinds of jigdo: MD5 (formats 1.x) and SHA-256 (format 2.0). */
export type ChecksumKind = 'md5' | 'sha256';

/** The label a .jigdo may define to fetch parts by checksum (spec §5.1 step 3). */
export const CHECKSUM_LABEL: Record<ChecksumKind, string> = { md5: 'MD5Sum', sha256: 'SHA256Sum' };

/** Canonical text key of a checksum, used everywhere as the part's identity (its [Parts] key). */
export function checksumKey(sum: Uint8Array): string {
  return encodeB64(sum);
}

/** Which kind a [Parts] key is, judged by its length; undefined for keys that are not canonical. */
export function kindOfKey(key: string): ChecksumKind | undefined {
  if (key.length === 22 && decodeB64(key, 16)) return 'md5';
  if (key.length === 43 && decodeB64(key, 32)) return 'sha256';
  return undefined;
}

export function hexOfKey(key: string): string {
  return Buffer.from(key, 'base64url').toString('hex');
}
