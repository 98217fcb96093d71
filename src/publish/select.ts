import type { Match } from './scanner.js';

/**
 * Which of the confirmed matches become parts: jigdo-file's greedy rule. Its scan confirms matches in
 * the order they end, keeps the first one that ends, and drops every pending match that started before
 * that end. So: go through the matches by end offset and keep each one that starts at or after the end
 * of the last one kept (a small file inside a big one wins; a file that is a prefix of another wins).
 *
 * Ties on the end offset follow jigdo-file's queue: a later start (a suffix) first; several files with
 * the same bytes at the same offset are checked in rounds of `checksumBlock` bytes, each round reversing
 * their order, starting from the last of them in candidate order.
 */
export const CHECKSUM_BLOCK = 128 * 1024;

export function selectMatches(matches: Match[], sizes: ArrayLike<number>): Match[] {
  const end = (m: Match): number => m.offset + sizes[m.candidate]!;
  const sorted = [...matches].sort((a, b) => {
    const d = end(a) - end(b);
    if (d !== 0) return d;
    if (a.offset !== b.offset) return b.offset - a.offset;
    // jigdo-file's rounds: one more after the last whole block (a size that is a multiple of the block included).
    const rounds = Math.floor(sizes[a.candidate]! / CHECKSUM_BLOCK) + 1;
    return rounds % 2 === 1 ? b.candidate - a.candidate : a.candidate - b.candidate;
  });
  const kept: Match[] = [];
  let free = 0;
  for (const m of sorted) {
    if (m.offset < free) continue;
    kept.push(m);
    free = end(m);
  }
  return kept;
}

/**
 * The candidates worth scanning for: of several with the same bytes (same size, same `keys[i]`: their CONFIRM
 * checksum), only the one selectMatches would keep. They match at the same offsets, and its tie rule puts the last of
 * them first when a size has an odd number of rounds, else the first. Scanning for all of them kept a match per copy
 * per offset: 3,000 copies of one file in an image of 3,000 of them were 9 million matches, and the scan worker ran
 * out of heap (the process aborted). Returns the kept indices, in order.
 */
export function withoutDuplicates(sizes: ArrayLike<number>, keys: readonly string[]): number[] {
  const winner = new Map<string, number>();
  for (let i = 0; i < keys.length; i++) {
    const key = `${sizes[i]}:${keys[i]}`;
    const lastWins = (Math.floor(sizes[i]! / CHECKSUM_BLOCK) + 1) % 2 === 1;
    if (!winner.has(key) || lastWins) winner.set(key, i);
  }
  return [...winner.values()].sort((a, b) => a - b);
}
