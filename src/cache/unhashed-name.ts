import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { ownerTag } from '../util/pid.js';

/** The end of an unhashed part's name (see commitUnhashed). */
export const UNHASHED = '.unverified';

/**
 * A new name for an unhashed file beside `final`: `HEX.OWNER-RANDOM.unverified`, used once, so nobody else ever
 * writes or renames a file to it: whatever is found there is the bytes whoever chose the name put there.
 */
export function unhashedName(final: string): string {
  return `${final}.${ownerTag()}-${randomBytes(6).toString('hex')}${UNHASHED}`;
}

/** The checksum name an unhashed file gets (its name up to the first dot). */
export function finalOf(file: string): string {
  const base = path.basename(file);
  return path.join(path.dirname(file), base.slice(0, base.indexOf('.')));
}
