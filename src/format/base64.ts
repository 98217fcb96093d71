/**
 * jigdo-Base64 (spec §4.5): the base64url alphabet, never padded. Encoding is canonical; decoding is
 * strict because [Parts] keys are matched by exact string (a non-canonical key never matches).
 */
const ALPHABET_ONLY = /^[A-Za-z0-9_-]*$/;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

export function encodeB64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Decodes a canonical jigdo-Base64 string of exactly `byteLength` bytes, or returns undefined. */
export function decodeB64(text: string, byteLength: number): Buffer | undefined {
  return isB64(text, byteLength) ? Buffer.from(text, 'base64url') : undefined;
}

/** Whether `text` is the canonical jigdo-Base64 of `byteLength` bytes (decodeB64 would decode it). */
export function isB64(text: string | undefined, byteLength: number): text is string {
  if (text?.length !== Math.ceil((byteLength * 8) / 6)) return false;
  if (!ALPHABET_ONLY.test(text)) return false;
  // Canonical: the last character's bits past the bytes' end are zero (checked so, not by encoding the bytes
  // again: every part key of a .jigdo is decoded at start-up).
  const padBits = text.length * 6 - byteLength * 8;
  return padBits === 0 || (ALPHABET.indexOf(text[text.length - 1]!) & ((1 << padBits) - 1)) === 0;
}
