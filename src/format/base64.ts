/**
 * jigdo-Base64 (spec §4.5): the base64url alphabet, never padded. Encoding is canonical; decoding is
 * strict because [Parts] keys are matched by exact string (a non-canonical key never matches).
 */
const ALPHABET_ONLY = /^[A-Za-z0-9_-]*$/;

export function encodeB64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Decodes a canonical jigdo-Base64 string of exactly `byteLength` bytes, or returns undefined. */
export function decodeB64(text: string, byteLength: number): Buffer | undefined {
  if (text.length !== Math.ceil((byteLength * 8) / 6)) return undefined;
  if (!ALPHABET_ONLY.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.length !== byteLength || encodeB64(bytes) !== text) return undefined;
  return bytes;
}
