/**
 * What the image reader needs from its sources, and nothing more: the reader is wired to these by the
 * composition root (src/engine/session.ts), never to the concrete template-data or part-store classes.
 * Both write into a buffer the caller owns and must stop writing once `signal` aborted (see settleAll):
 * FUSE frees the buffer when the read is answered.
 */

/** The template's raw stream (the bytes between the parts), at any offset. */
export interface RawBytes {
  readInto(rawOffset: number, length: number, target: Buffer, targetOffset: number, signal?: AbortSignal): Promise<void>;
}

/** The parts' bytes, each by its checksum key, only ever after the part was verified. */
export interface PartBytes {
  readInto(key: string, from: number, length: number, target: Buffer, targetOffset: number, signal?: AbortSignal): Promise<void>;
  /** Have these parts located (and fetched) ahead of a sequential reader; never fails. */
  prefetch(keys: Iterable<string>): void;
  /**
   * A sequential reader has read these parts at their last place in the image: it will not read them again, so
   * their files may leave the page cache (PartStore.passed). Never fails.
   */
  passed?(keys: string[]): void;
}
