import { setFlagsFromString } from 'node:v8';

/**
 * Imported first by cli/main.ts, before anything allocates: V8 told to favour memory over speed. Set here rather
 * than on the command line so that `bin/jigdofs`, the daemon it spawns and `make-image` all get it.
 *
 * - A 4 MiB new space for the main thread (`--max-semi-space-size` given here counts double): V8 grows it to
 *   3 × 16 MiB under the allocation rate of a `cp` from a mount (promises and closures per FUSE request).
 * - `--optimize-for-size`: smaller heap growing steps and slack; with parts over HTTP undici's objects had the
 *   old space committed at ~54 MB for ~20 MB live.
 *
 * Measured on the 2 GB fixture, side by side, the daemon during a `cp` with an empty cache (BENCHMARKS.md):
 * peak RSS over HTTP 214-223 -> 179-181 MB, parts local 173-178 -> 148-153 MB; daemon CPU-seconds unchanged
 * within noise (HTTP 23.8/25.7 vs 26.3 s, local 9.6/8.7 vs 9.4/9.8 s, load 10).
 */
export const SEMI_SPACE_MB = 2;
setFlagsFromString(`--max-semi-space-size=${SEMI_SPACE_MB}`);
setFlagsFromString('--optimize-for-size');
