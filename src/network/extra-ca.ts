import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { errorMessage } from '../format/errors.js';

/**
 * NODE_EXTRA_CA_CERTS, loaded when the first https connection needs it rather than at start-up.
 *
 * Node 20 reads that file and builds its whole root store before running any code: with Debian's bundle (146
 * certificates) every `jigdofs` command started ~45 ms later (`info` of the 2 GB fixture 0.17-0.20 s against 0.13-0.16
 * s; BENCHMARKS.md, "CA certificates at the first https connection"), although most runs (parts local, a warm cache,
 * plain-http mirrors) make no TLS connection at all. So bin/jigdofs moves the variable to DEFERRED_CA_ENV (made
 * absolute) before node starts, and the https client builds one secure context from Node's bundled roots plus that
 * file's certificates: what Node itself would have trusted. Not moved when NODE_OPTIONS picks another store
 * (--use-openssl-ca): Node then loads the file as usual, and this module is not asked.
 */
export const DEFERRED_CA_ENV = 'JIGDOFS_EXTRA_CA_CERTS';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

let context: SecureContext | null | undefined;

/**
 * The secure context every https connection uses (one for the process: building it takes ~50 ms), or undefined when
 * no certificate file was deferred (Node's default store, NODE_EXTRA_CA_CERTS included when Node loaded it).
 * A file that cannot be read or holds no certificate is warned about once, as Node does, and the bundled roots stay.
 */
export function deferredCaContext(env: NodeJS.ProcessEnv = process.env): SecureContext | undefined {
  if (context !== undefined) return context ?? undefined;
  const file = env[DEFERRED_CA_ENV];
  if (!file) {
    context = null;
    return undefined;
  }
  let extra: string[] = [];
  try {
    extra = readFileSync(file, 'utf8').match(PEM_CERTIFICATE) ?? [];
    if (extra.length === 0) throw new Error('no PEM certificate in it');
  } catch (err) {
    process.emitWarning(`Ignoring extra certs from \`${file}\` (NODE_EXTRA_CA_CERTS), load failed: ${errorMessage(err)}`);
  }
  context = extra.length === 0 ? null : createSecureContext({ ca: [...rootCertificates, ...extra] });
  return context ?? undefined;
}
