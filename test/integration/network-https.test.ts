/**
 * Parts over TLS: exact with the mirror's certificate trusted (NODE_EXTRA_CA_CERTS), a clear failure without.
 * (Split from network.test.ts by concern; the shared setup is test/helpers/network-suite.ts.)
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { runCli } from '../helpers/cli.js';
import { startMirror } from '../helpers/mirror-server.js';
import { fileMd5, gets, jigdoWithServers, missingPartLines, partsUri } from '../helpers/network.js';
import { fx, v, plainConfig, mirrors, P, dir, setupNetworkSuite } from '../helpers/network-suite.js';

const execFileAsync = promisify(execFile);

setupNetworkSuite();

describe('https', () => {
  test('parts over TLS: exact with the certificate trusted, a clear failure without', async () => {
    const d = await dir('https');
    // A throwaway certificate for 127.0.0.1, trusted only through NODE_EXTRA_CA_CERTS in the child.
    const key = path.join(d, 'key.pem');
    const cert = path.join(d, 'cert.pem');
    await execFileAsync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
      '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    const m = await startMirror({ root: fx.tree, tls: { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8') } });
    mirrors.push(m);
    assert.match(m.url, /^https:/);
    const jigdo = await jigdoWithServers(v, [partsUri(m)], d);
    const env = (extra: NodeJS.ProcessEnv) => ({ ...process.env, XDG_CACHE_HOME: d, XDG_CONFIG_HOME: d, JIGDOFS_DEBUG: '', ...extra });
    const out = path.join(d, 'out.iso');

    const trusted = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'c1'), '--config', plainConfig], { env: env({ NODE_EXTRA_CA_CERTS: cert }) });
    assert.equal(trusted.code, 0, trusted.stderr);
    assert.equal(await fileMd5(out), v.imageMd5);
    for (const p of Object.values(P)) assert.equal(gets(m, p).length, 1, `${p} fetched once over https`);

    await rm(out);
    const untrusted = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'c2'), '--config', plainConfig, '--retries', '0'], { env: env({}) });
    assert.equal(untrusted.code, 1, untrusted.stderr);
    assert.match(untrusted.stderr, /6 part\(s\) missing/);
    const partLines = missingPartLines(untrusted.stderr);
    assert.equal(partLines.length, 6, untrusted.stderr);
    for (const l of partLines) assert.match(l, /: .*self[- ]signed certificate/i, 'each missing part says why');
    assert.deepEqual((await readdir(d)).filter((f) => f.startsWith('out.iso')), []);

    // As users run it (bin/jigdofs as a program), NODE_EXTRA_CA_CERTS is loaded at the first https connection
    // (src/network/extra-ca.ts); a relative name still means the file in the directory the command started in.
    const deferred = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'c3'), '--config', plainConfig],
      { program: true, cwd: d, env: env({ NODE_EXTRA_CA_CERTS: path.basename(cert) }) });
    assert.equal(deferred.code, 0, deferred.stderr);
    assert.equal(await fileMd5(out), v.imageMd5);
    await rm(out);
    // A file that cannot be read: warned about (naming it) when https needs it, and the bundled roots alone then.
    const unreadable = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'c4'), '--config', plainConfig, '--retries', '0'],
      { program: true, env: env({ NODE_EXTRA_CA_CERTS: path.join(d, 'no-such.pem') }) });
    assert.equal(unreadable.code, 1, unreadable.stderr);
    assert.match(unreadable.stderr, /Ignoring extra certs from `[^`]*no-such\.pem`/);
    assert.match(unreadable.stderr, /self[- ]signed certificate/i);
  });

  test('NODE_EXTRA_CA_CERTS costs a run without https nothing: node does not load it at start-up', async () => {
    const d = await dir('extra-ca');
    const env = (extra: NodeJS.ProcessEnv) => ({ ...process.env, XDG_CACHE_HOME: d, XDG_CONFIG_HOME: d, JIGDOFS_DEBUG: '', ...extra });
    const missing = path.join(d, 'no-such.pem');
    // Node 20 would read the file before any of our code runs, and warn that it cannot.
    const info = await runCli(['info', v.jigdo], { program: true, env: env({ NODE_EXTRA_CA_CERTS: missing }) });
    assert.equal(info.code, 0, info.stderr);
    assert.doesNotMatch(info.stderr, /extra certs/i);
    // Unless NODE_OPTIONS picks the system's store: Node then loads the file itself, as it would without us.
    const system = await runCli(['info', v.jigdo], { program: true, env: env({ NODE_EXTRA_CA_CERTS: missing, NODE_OPTIONS: '--use-openssl-ca' }) });
    assert.equal(system.code, 0, system.stderr);
    assert.match(system.stderr, /Ignoring extra certs from `[^`]*no-such\.pem`/);
  });
});
