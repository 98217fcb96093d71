import type { CacheWatcher } from '../cache/disk-room.js';
import type { VerifiedCopy } from './verified-copy.js';

/**
 * Something that can produce a verified copy of a part: local files, the disk cache, mirrors. Undefined
 * (or an error saying why) when it has none; only verified-copy.ts makes the type it returns.
 */
export interface PartProvider {
  readonly name: string;
  /**
   * Answers from this machine without waiting for a --scan walk or the network (the disk cache): asked right after the
   * places the .jigdo names, before the walk's files (engine/session.ts). A warm cache waited for a large --scan.
   */
  readonly atHand?: boolean;
  /**
   * `ahead`: looked up ahead of a sequential reader (PartStore.prefetch), no read waits for it yet: a provider may then
   * favour cost over latency (RemoteParts fetches it in one request, hashed as it arrives).
   */
  find(key: string, ahead?: boolean): Promise<VerifiedCopy | undefined>;
  /**
   * Verify once (ImageSession.deferChecks), for providers that can take copies unhashed: on, copies it may
   * take on trust come `deferred`; `confirmDeferred` once the job's whole output matched; `rejected` when a
   * copy it gave unhashed turned out wrong (hashed again after a wrong image).
   */
  deferChecks?(on: boolean): void;
  confirmDeferred?(): Promise<void>;
  rejected?(key: string): void;
  /**
   * A copy it gave could not be read as verified (an I/O error, a file moved or changed, a disc swapped or ejected):
   * the store forgot it and looks for the part again. Never fails.
   */
  unreadable?(key: string, copy: VerifiedCopy): void;
  /**
   * A sequential reader has read these copies (this provider's) at their parts' last place in the image: one whose
   * copies are its own downloads lets them leave the page cache (RemoteParts). Never fails.
   */
  passed?(copies: VerifiedCopy[]): void;
  /**
   * For the disk cache: `w` is asked which of its files the store still needs before any is evicted to make room on
   * the disk, and told which went (DiskRoom). Returns the removal of `w`.
   */
  watch?(w: CacheWatcher): () => void;
}
