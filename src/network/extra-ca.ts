import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';
import type { SecureContext } from 'node:tls';
import { errorMessage } from '../format/errors.js';

/**
 * NODE_EXTRA_CA_CERTS, loaded when the first https connection needs it rather than at start-up.
 *
 * Node 20 reads that file and builds its whole root store before running any code (nodejs/node#40524): with Debian's
 * bundle (146 certificates) every `jigdofs` command started ~45 ms later (`info` of the 2 GB fixture 0.17-0.20 s
 * against 0.11-0.14 s; BENCHMARKS.md, "CA certificates at the first https connection"), although most runs (parts
 * local, a warm cache, plain-http mirrors) make no TLS connection at all. So bin/jigdofs moves the variable to
 * DEFERRED_CA_ENV (made absolute) before node starts, and the https client gets one secure context holding Node's
 * default store plus that file's certificates: what Node itself would have trusted, whichever store its build or
 * flags pick (the bundled roots, or OpenSSL's with --use-openssl-ca or a distribution's build).
 */
const DEFERRED_CA_ENV = 'JIGDOFS_EXTRA_CA_CERTS';

/** The native side of a SecureContext: `addCACert` is what tls.createSecureContext's own `ca` option calls. */
interface NativeContext {
  addCACert?: (pem: string | Buffer) => void;
}

let context: SecureContext | null | undefined;

/**
 * The secure context every https connection uses (one for the process: building it took ~50 ms here), or undefined
 * when no certificate file was deferred (Node's own store then, NODE_EXTRA_CA_CERTS included when Node loaded it).
 * A file that cannot be read gets one warning line, as Node gives, and the default store alone is used.
 */
export function deferredCaContext(): SecureContext | undefined {
  if (context !== undefined) return context ?? undefined;
  context = null;
  const file = process.env[DEFERRED_CA_ENV];
  if (!file) return undefined;
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    process.stderr.write(`jigdofs: ignoring extra CA certificates from ${file} (NODE_EXTRA_CA_CERTS): ${errorMessage(err)}\n`);
    return undefined;
  }
  context = withExtraCerts(pem);
  return context;
}

/**
 * Node's default store plus the certificates of `pem`. Adding to a context made without `ca` copies the default store
 * first (node's SecureContext::AddCACert), as NODE_EXTRA_CA_CERTS does. `context` is not documented: should a later
 * Node lack `addCACert`, the default certificates are listed instead (`getCACertificates`, Node 22.15+; the bundled
 * roots before it).
 */
function withExtraCerts(pem: Buffer): SecureContext {
  const sc = tls.createSecureContext();
  const native = (sc as SecureContext & { context?: NativeContext }).context;
  if (typeof native?.addCACert === 'function') {
    native.addCACert(pem);
    return sc;
  }
  const listed = (tls as { getCACertificates?: (type: string) => string[] }).getCACertificates?.('default');
  return tls.createSecureContext({ ca: [...(listed ?? tls.rootCertificates), pem.toString('latin1')] });
}
