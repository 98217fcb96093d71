/**
 * The conformance suite every part provider passes (issue 8): a present part gives a verified copy whose
 * bytes hash to the key and that the part store accepts; an absent one gives undefined or an error; a copy
 * with wrong bytes of the right size is never returned. Run against the local provider (LocalSources over
 * a real file tree), the disk cache and the mirrors (RemoteParts through a real HTTP mirror), each built
 * as src/engine/session.ts and src/network/network.ts build them, from a sample .jigdo and its template.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileByteSource } from '../../src/format/bytesource.js';
import { checksumKey, hexOfKey } from '../../src/format/checksum.js';
import { parseJigdo, type JigdoFile } from '../../src/format/jigdo.js';
import { parseTemplate } from '../../src/format/template.js';
import { ImageLayout } from '../../src/image/layout.js';
import { Network, NETWORK_DEFAULTS } from '../../src/network/network.js';
import { HashIndex } from '../../src/sources/hash-index.js';
import { LocalSources } from '../../src/sources/local-sources.js';
import { PartStore, type PartProvider } from '../../src/sources/part-store.js';
import { WorkerPool } from '../../src/util/worker-pool.js';

const pool = new WorkerPool();
import { startMirror, type Mirror } from '../helpers/mirror-server.js';

const SAMPLES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'samples');
/** [Parts] of jf-md5-gzip.jigdo: two parts of different sizes, and one the suite never provides. */
const PARTS = { present: 'a.bin', wrong: 'sub/c.bin', absent: 'sub/b-copy.bin' } as const;

let work: string;
let dirs = 0;
let mirror: Mirror;
let jigdo: JigdoFile;
let layout: ImageLayout;
let templateDesc: Awaited<ReturnType<typeof parseTemplate>>['desc'];
/** Part key by its path under the `Parts` label. */
const keyOf = new Map<string, string>();

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jigdofs-providers-'));
  await mkdir(path.join(work, 'mirror'));
  mirror = await startMirror({ root: path.join(work, 'mirror') });
  const text = (await readFile(path.join(SAMPLES, 'jf-md5-gzip.jigdo'), 'utf8')).replace('Parts=http://127.0.0.1:8765/parts/', `Parts=${mirror.url}`);
  const jigdoFile = path.join(work, 'image.jigdo');
  await writeFile(jigdoFile, text);
  jigdo = await parseJigdo(Buffer.from(text), { kind: 'file', path: jigdoFile });
  const src = await FileByteSource.open(path.join(SAMPLES, 'jf-md5-gzip.template'));
  try {
    templateDesc = (await parseTemplate(src)).desc;
  } finally {
    await src.close();
  }
  layout = ImageLayout.fromDesc(templateDesc, path.join(SAMPLES, 'jf-md5-gzip.template'));
  for (const [key, values] of jigdo.parts) for (const v of values) keyOf.set(v.uri.replace(/^Parts:/, ''), key);
  for (const name of Object.values(PARTS)) assert.ok(layout.parts.get(keyOf.get(name)!), `${name} is a part of the image`);
});

after(async () => {
  await mirror.close();
  await pool.close();
  await rm(work, { recursive: true, force: true });
});

const bytesOf = (name: string): Promise<Buffer> => readFile(path.join(SAMPLES, 'parts', name));
/** As many bytes as the part, none of them right. */
const wrongBytesOf = async (name: string): Promise<Buffer> => Buffer.from((await bytesOf(name)).map((b) => b ^ 0xff));

/** One provider under test, with ways to put a part where it looks, rightly or wrongly. */
interface Subject {
  provider: PartProvider;
  /** Puts the part's right bytes where the provider finds them. */
  give(name: string): Promise<void>;
  /** Puts bytes of the right size but wrong content wherever this provider takes bytes from. */
  giveWrong(name: string): Promise<void>;
  close(): Promise<void>;
}

async function newDir(what: string): Promise<string> {
  const dir = path.join(work, `${++dirs}-${what}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** As openImage does: LocalSources over `--local Parts=TREE`, wrapped as the 'local' provider. */
async function localSubject(): Promise<Subject> {
  const tree = await newDir('tree');
  const index = await HashIndex.load(undefined);
  const local = new LocalSources(jigdo, layout, templateDesc, { trees: [{ label: 'Parts', dir: tree }], scan: [] }, index, pool);
  const put = async (name: string, bytes: Buffer): Promise<void> => {
    await mkdir(path.dirname(path.join(tree, name)), { recursive: true });
    await writeFile(path.join(tree, name), bytes);
  };
  return {
    provider: { name: 'local', find: (key) => local.find(key) },
    give: async (name) => put(name, await bytesOf(name)),
    giveWrong: async (name) => put(name, await wrongBytesOf(name)),
    close: async () => undefined,
  };
}

function newNetwork(cacheDir: string, offline: boolean): Network {
  return new Network({ ...NETWORK_DEFAULTS, offline, mirrors: new Map(), cacheDir, retries: 0, timeoutMs: 5000, log: () => undefined, hashFile: (f, k) => pool.hashFile(f, k) });
}

/**
 * The disk cache as Network.providers gives it (offline: the cache is the last place looked). Bytes get
 * into it the one way there is: a writer whose commit hashes them.
 */
async function cacheSubject(): Promise<Subject> {
  const net = newNetwork(await newDir('cache'), true);
  const [provider] = net.providers({ jigdo, layout });
  assert.equal(provider?.name, 'cache');
  const store = async (name: string, bytes: Buffer): Promise<void> => {
    const key = keyOf.get(name)!;
    const begun = await net.cache.begin('parts', 'md5', hexOfKey(key));
    assert.ok('writer' in begun);
    try {
      await begun.writer.fh.write(bytes, 0, bytes.length, 0);
      await begun.writer.commit([['md5', layout.parts.get(key)!.sum]]);
    } finally {
      await begun.writer.abort();
    }
  };
  return {
    provider,
    give: async (name) => store(name, await bytesOf(name)),
    giveWrong: async (name) => store(name, await wrongBytesOf(name)),
    close: () => net.close(),
  };
}

/**
 * The mirrors as Network.providers gives them: RemoteParts fetching from the test mirror (the .jigdo's
 * `Parts` server) into a cache of their own. Each role has its own part, so the subjects share the mirror.
 */
async function mirrorSubject(): Promise<Subject> {
  const net = newNetwork(await newDir('cache'), false);
  const remote = net.providers({ jigdo, layout }).find((p) => p.name === 'mirrors');
  assert.ok(remote);
  const put = async (name: string, bytes: Buffer): Promise<void> => {
    const file = path.join(mirror.root, name);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, bytes);
  };
  return {
    provider: remote,
    give: async (name) => put(name, await bytesOf(name)),
    giveWrong: async (name) => put(name, await wrongBytesOf(name)),
    close: () => net.close(),
  };
}

function conformance(what: string, make: () => Promise<Subject>): void {
  describe(`part provider: ${what}`, () => {
    test('a present part gives a verified copy whose bytes hash to the key, which the part store serves', async () => {
      const s = await make();
      try {
        await s.give(PARTS.present);
        const key = keyOf.get(PARTS.present)!;
        const need = layout.parts.get(key)!;
        const copy = await s.provider.find(key);
        assert.ok(copy, 'found');
        const fh = await open(copy.path, 'r');
        const bytes = Buffer.alloc(need.length);
        try {
          await fh.read(bytes, 0, need.length, copy.offset);
        } finally {
          await fh.close();
        }
        assert.equal(checksumKey(createHash('md5').update(bytes).digest()), key);
        const store = new PartStore(layout, [s.provider]);
        const read = Buffer.alloc(need.length);
        await store.readInto(key, 0, need.length, read, 0);
        await store.close();
        assert.ok(read.equals(await bytesOf(PARTS.present)));
      } finally {
        await s.close();
      }
    });

    test('an absent part gives undefined or an error', async () => {
      const s = await make();
      try {
        const copy = await s.provider.find(keyOf.get(PARTS.absent)!).catch((err: unknown) => (assert.ok(err instanceof Error), undefined));
        assert.equal(copy, undefined);
      } finally {
        await s.close();
      }
    });

    test('wrong bytes of the right size are never returned', async () => {
      const s = await make();
      try {
        await s.giveWrong(PARTS.wrong);
        const copy = await s.provider.find(keyOf.get(PARTS.wrong)!).catch((err: unknown) => (assert.ok(err instanceof Error), undefined));
        assert.equal(copy, undefined);
      } finally {
        await s.close();
      }
    });
  });
}

conformance('local copies (LocalSources over --local)', localSubject);
conformance('disk cache', cacheSubject);
conformance('mirrors (RemoteParts over HTTP)', mirrorSubject);

test('mirrors: a part fetched in one request is hashed as it arrived, not read again for its commit', async () => {
  const hashed: string[] = [];
  const net = new Network({
    ...NETWORK_DEFAULTS,
    offline: false,
    mirrors: new Map(),
    cacheDir: await newDir('cache'),
    retries: 0,
    timeoutMs: 5000,
    log: () => undefined,
    hashFile: (f, k) => (hashed.push(f), pool.hashFile(f, k)),
  });
  try {
    const file = path.join(mirror.root, PARTS.present);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, await bytesOf(PARTS.present));
    const remote = net.providers({ jigdo, layout }).find((p) => p.name === 'mirrors')!;
    const key = keyOf.get(PARTS.present)!;
    const copy = await remote.find(key);
    assert.ok(copy);
    assert.equal(checksumKey(createHash('md5').update(await readFile(copy.path)).digest()), key);
    assert.deepEqual(hashed, [], 'the commit took the hash the fetch thread made');
  } finally {
    await net.close();
  }
});

/**
 * A user's file is checked once per read, after it (part-store.ts readCopy), and no longer also when opened
 * or on a timer: wrong bytes must still never be served, whether the file was swapped for another (a new
 * inode under its name, between the lookup and the first open) or edited in place with its times put back.
 */
describe('part store: a local copy changed after it was verified is not served', () => {
  const swapped = async (file: string, bytes: Buffer): Promise<void> => {
    await writeFile(`${file}.new`, bytes);
    await rename(`${file}.new`, file);
  };
  const editedInPlace = async (file: string, bytes: Buffer): Promise<void> => {
    const before = await stat(file);
    await writeFile(file, bytes);
    await utimes(file, before.atime, before.mtime); // `touch -r`: only the ctime tells
  };
  for (const [how, change] of [['swapped for another file', swapped], ['edited in place, times kept', editedInPlace]] as const) {
    test(how, async () => {
      const s = await localSubject();
      const key = keyOf.get(PARTS.present)!;
      const need = layout.parts.get(key)!;
      await s.give(PARTS.present);
      const store = new PartStore(layout, [s.provider], () => undefined, false);
      try {
        await store.locate(key); // verified: hashed and recorded, not opened yet
        const copy = (await s.provider.find(key))!;
        await change(copy.path, await wrongBytesOf(PARTS.present));
        const read = Buffer.alloc(need.length);
        // The read may have put bytes into the buffer; what matters is that it fails rather than serve them.
        await assert.rejects(store.readInto(key, 0, need.length, read, 0), /changed since it was (verified|hashed)|does not hold/);
      } finally {
        await store.close();
      }
    });
  }
});
