import { createRequire } from 'node:module';
import type FuseNative from 'fuse-native';

/**
 * fuse-native's class, loaded with require(): the package is CommonJS, and an ES `import` of it first has Node
 * parse its source for the names it exports. Measured on the start-up host (BENCHMARKS.md, "Start-up: the spare
 * daemon"): require() 16.5–21.6 ms against 26.2–33.6 ms for import(), on the daemon's path to the mount.
 */
export const Fuse = createRequire(import.meta.url)('fuse-native') as typeof FuseNative;
export type Fuse = FuseNative;
