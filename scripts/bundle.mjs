#!/usr/bin/env node
/**
 * Second half of `npm run build` (after `tsc`, which type-checks and emits dist/ module by module): bundles the
 * program's entry points into dist/app/, which bin/jigdofs and bin/mount.fuse.jigdofs run.
 *
 * Why: start-up (issue 11 item 5). Node's ESM loader costs ~0.6 ms per module (resolve, read, compile, link);
 * every command loads ~130 of ours and commander's, and `mount` pays it twice (the CLI, then the daemon it
 * spawns). One file per process loads in a fraction of that: BENCHMARKS.md, "Start-up: one bundle".
 *
 * dist/app/ is flat, so the workers started with `startWorker(import.meta.url, './name')` (util/start-worker.ts)
 * and mount-helper's `./main.js` resolve next to the chunk that asks for them, as they do in dist/.
 * Packages with files of their own stay outside (fuse-native: a native addon; @foxglove/wasm-bz2: a .wasm),
 * and undici stays a separate import, loaded only at a run's first request (network/http-client.ts).
 */
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { rm } from 'node:fs/promises';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const entries = [
  'dist/cli/main.js',
  'dist/cli/spare-daemon.js', // bin/jigdofs loads it before main.js: it must stay a small file of its own
  'dist/cli/mount-helper.js',
  'dist/util/worker-main.js',
  'dist/network/raw-http/fetch-worker.js',
  'dist/publish/scan-worker.js',
  'dist/publish/walk-worker.js',
];

await rm(path.join(root, 'dist/app'), { recursive: true, force: true }); // chunk names change with their content
await build({
  absWorkingDir: root,
  entryPoints: entries,
  outdir: 'dist/app',
  entryNames: '[name]',
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true, // code shared by the CLI and the workers once; the daemon's fuse code only where imported
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked', // node --enable-source-maps maps stack traces back to dist/ (and its maps to src/)
  external: ['fuse-native', 'undici', '@foxglove/wasm-bz2'],
  // commander is CommonJS: its require() of node built-ins needs a real require in an ES module.
  banner: { js: "import { createRequire as __jigdofsRequire } from 'node:module'; const require = __jigdofsRequire(import.meta.url);" },
  logLevel: 'warning',
});
