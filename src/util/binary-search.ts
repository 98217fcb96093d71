/** Binary search: the index of the last element of the ascending `starts` that is <= `value` (0 if none). */
export function lastAtOrBefore(starts: Float64Array, value: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (starts[mid]! <= value) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
