/**
 * Parts over TLS: exact with the mirror's certificate trusted (NODE_EXTRA_CA_CERTS), a clear failure without.
 * (Split from network.test.ts by concern; the shared setup is test/helpers/network-suite.ts.)
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, rm } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo, type Server } from 'node:net';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { startMirror } from '../helpers/mirror-server.js';
import { fileMd5, gets, jigdoWithServers, missingPartLines, partsUri, selfSignedCertificate } from '../helpers/network.js';
import { fx, v, plainConfig, mirrors, P, dir, setupNetworkSuite } from '../helpers/network-suite.js';

setupNetworkSuite();

describe('https', () => {
  test('parts over TLS: exact with the certificate trusted, a clear failure without', async () => {
    const d = await dir('https');
    // A throwaway certificate for 127.0.0.1, trusted only through NODE_EXTRA_CA_CERTS in the child.
    const { key, cert } = await selfSignedCertificate(d, 'mirror');
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
    for (const l of partLines) assert.match(l, /: TLS: self-signed certificate$/, 'each missing part says why');
    assert.deepEqual((await readdir(d)).filter((f) => f.startsWith('out.iso')), []);

    // As users run it (bin/jigdofs as a program), NODE_EXTRA_CA_CERTS is loaded at the first https connection
    // (src/network/extra-ca.ts; the start-up test below shows Node no longer loads it); a relative name is the file in
    // the directory the command started in.
    const asUsers = (extra: NodeJS.ProcessEnv) => env({ NODE_OPTIONS: '', ...extra });
    const deferred = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'c3'), '--config', plainConfig],
      { program: true, cwd: d, env: asUsers({ NODE_EXTRA_CA_CERTS: path.basename(cert) }) });
    assert.equal(deferred.code, 0, deferred.stderr);
    assert.equal(await fileMd5(out), v.imageMd5);
    await rm(out);
    // It adds to Node's default store, whichever that is: with --use-openssl-ca, OpenSSL's (SSL_CERT_FILE names the
    // mirror's certificate), and NODE_EXTRA_CA_CERTS another one. The bundled roots plus the file would refuse the mirror.
    const other = (await selfSignedCertificate(d, 'other', 'another.example')).cert;
    const systemStore = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'c5'), '--config', plainConfig],
      { program: true, env: asUsers({ NODE_OPTIONS: '--use-openssl-ca', SSL_CERT_FILE: cert, SSL_CERT_DIR: path.join(d, 'no-such-dir'), NODE_EXTRA_CA_CERTS: other }) });
    assert.equal(systemStore.code, 0, systemStore.stderr);
    assert.equal(await fileMd5(out), v.imageMd5);
    await rm(out);
    // A file that cannot be read: one line naming it when https needs it (Node's own start-up warning reads otherwise),
    // and the default store alone, which does not know the mirror.
    const unreadable = await runCli(['make-image', jigdo, '-o', out, '--cache-dir', path.join(d, 'c4'), '--config', plainConfig, '--retries', '0'],
      { program: true, env: asUsers({ NODE_EXTRA_CA_CERTS: path.join(d, 'no-such.pem') }) });
    assert.equal(unreadable.code, 1, unreadable.stderr);
    assert.equal(unreadable.stderr.match(/jigdofs: ignoring extra CA certificates from \S*no-such\.pem \(NODE_EXTRA_CA_CERTS\): .*no such file/gi)?.length, 1, unreadable.stderr);
    assert.match(unreadable.stderr, /self[- ]signed certificate/i);
  });

  test('a plain-HTTP server named by an https URL: "TLS: wrong version number", not asked again every round', async () => {
    const d = await dir('https-to-http');
    let connections = 0;
    // Answers anything with a plain-HTTP 400 (what a web server says to a TLS hello), counting connections.
    const plain: Server = createNetServer((socket) => {
      connections++;
      socket.on('error', () => undefined);
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    try {
      const uri = `https://127.0.0.1:${(plain.address() as AddressInfo).port}/parts/`;
      const jigdo = await jigdoWithServers(v, [uri], d);
      const r = await runCli(['make-image', jigdo, '-o', path.join(d, 'out.iso'), '--cache-dir', path.join(d, 'c'), '--config', plainConfig, '--retries', '2']);
      assert.equal(r.code, 1, r.stderr);
      const partLines = missingPartLines(r.stderr);
      assert.equal(partLines.length, 6, r.stderr);
      for (const l of partLines) assert.match(l, /: TLS: wrong version number \(the server does not speak TLS there: http, not https\?\)$/);
      // Permanent: one handshake per part (3 rounds each with --retries 2 when it was taken for a cut).
      assert.ok(connections <= 6, `${connections} connections`);
    } finally {
      plain.close(); // (not awaited: its callback waited for connections the client had long closed)
    }
  });

  test('NODE_EXTRA_CA_CERTS costs a run without https nothing: node does not load it at start-up', async () => {
    const d = await dir('extra-ca');
    const missing = path.join(d, 'no-such.pem');
    // Node 20 would read the file before any of our code runs, and warn that it cannot.
    const info = await runCli(['info', v.jigdo], {
      program: true,
      env: { ...process.env, XDG_CACHE_HOME: d, XDG_CONFIG_HOME: d, JIGDOFS_DEBUG: '', NODE_OPTIONS: '', NODE_EXTRA_CA_CERTS: missing },
    });
    assert.equal(info.code, 0, info.stderr);
    assert.doesNotMatch(info.stderr, /extra c/i);
  });
});
