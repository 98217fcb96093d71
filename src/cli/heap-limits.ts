import { setFlagsFromString } from 'node:v8';

/**
 * Imported first by cli/main.ts, before anything allocates: a smaller young generation for the main thread.
 * V8 lets the new space grow to 3 × 16 MiB under the allocation rate of a sequential `cp` from a mount (promises
 * and closures per FUSE request, short-lived), which was ~30 MB of the daemon's peak RSS. Set here rather than
 * on the command line so that `bin/jigdofs`, the daemon it spawns and `make-image` all get it. Measured on the
 * 2 GB fixture (BENCHMARKS.md): peak RSS down, CPU-seconds of the cp unchanged within noise.
 */
export const SEMI_SPACE_MB = 2;
setFlagsFromString(`--max-semi-space-size=${SEMI_SPACE_MB}`);
