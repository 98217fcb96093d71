// Where the cache and the configuration file are by default: $XDG_CACHE_HOME / $XDG_CONFIG_HOME when absolute.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import path from 'node:path';
import { defaultCacheDir } from '../../src/engine/cache-dir.js';
import { xdgDir } from '../../src/util/xdg-dir.js';

function withEnv(name: string, value: string | undefined, fn: () => void): void {
  const before = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    fn();
  } finally {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  }
}

test('an absolute $XDG_CACHE_HOME is the cache\'s base; a relative or empty one is ignored, as the XDG spec says (found by a probe)', () => {
  withEnv('XDG_CACHE_HOME', '/srv/c', () => assert.equal(defaultCacheDir(), '/srv/c/jigdofs'));
  // It was taken from the current folder: each folder a command ran in had a cache of its own.
  withEnv('XDG_CACHE_HOME', 'rel/c', () => assert.equal(defaultCacheDir(), path.join(homedir(), '.cache', 'jigdofs')));
  withEnv('XDG_CACHE_HOME', '', () => assert.equal(defaultCacheDir(), path.join(homedir(), '.cache', 'jigdofs')));
  withEnv('XDG_CONFIG_HOME', './conf', () => assert.equal(xdgDir('XDG_CONFIG_HOME', '.config'), path.join(homedir(), '.config')));
  withEnv('XDG_CONFIG_HOME', undefined, () => assert.equal(xdgDir('XDG_CONFIG_HOME', '.config'), path.join(homedir(), '.config')));
});
