import { readFile } from 'node:fs/promises';
import { describeLocation, type Location } from '../format/location.js';
import { JigdoError, errorMessage } from '../format/errors.js';

/**
 * Reads a whole small resource (.jigdo, [Include]) from where it lives. Remote locations are handled by
 * the function installed with `setRemoteLoader` (the network layer), so this module needs no HTTP.
 */
export type RemoteLoader = (url: string) => Promise<Buffer>;

let remoteLoader: RemoteLoader | undefined;

export function setRemoteLoader(loader: RemoteLoader | undefined): void {
  remoteLoader = loader;
}

export async function loadResource(loc: Location): Promise<Buffer> {
  if (loc.kind === 'file') {
    try {
      return await readFile(loc.path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new JigdoError(loc.path, code === 'ENOENT' ? 'file not found' : `cannot read: ${errorMessage(err)}`);
    }
  }
  if (!remoteLoader) throw new JigdoError(describeLocation(loc), 'cannot fetch URLs here (offline, or no network support)');
  return remoteLoader(loc.url);
}
