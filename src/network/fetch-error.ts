import { errorMessage } from '../format/errors.js';

/**
 * Every failure of the HTTP layer as one error type: its `kind` tells the caller whether to resume, try
 * the next mirror, or give up on this mirror for this file; `permanent` whether the same URL is worth
 * asking again.
 */

export type FailureKind =
  /** 404 / 410: the mirror does not have the file. */
  | 'not-found'
  /** Any other unexpected status (4xx, 5xx, a 200 where a range was needed...). */
  | 'status'
  /** No connection (refused, DNS, unreachable). */
  | 'connect'
  /** Connect, headers or body-idle timeout (a stall). */
  | 'timeout'
  /** The body kept coming, but slower than MIN_BYTES_PER_SECOND over a whole timeout period (a trickle). */
  | 'slow'
  /** The connection was cut mid-body. */
  | 'reset'
  /** The body ended before the bytes we asked for (premature close or a short Content-Length). */
  | 'short'
  /** The mirror's file has another size than the part (Content-Range / Content-Length). */
  | 'wrong-size'
  /** The bytes did not match the checksum. */
  | 'mismatch'
  /** A malformed answer (bad Content-Range...) or an unusable URL. */
  | 'protocol'
  /** A 200 answer to a Range request from a byte other than 0: the server ignores Range. */
  | 'no-range'
  /** Not what we asked for: larger than we accept, or not the kind of file wanted (a template's header...). */
  | 'refused'
  /** The TLS handshake failed: no https there, or a certificate we do not trust (the host's, whatever the path). */
  | 'tls'
  /** Not asked at all: the mirror is down (it has not answered several requests in a row, see MirrorBoard). */
  | 'down'
  /** Cancelled by us. */
  | 'aborted'
  /** Storing what the mirror sent failed here (a full disk...): not the mirror's fault, no use trying others. */
  | 'local';

export class FetchError extends Error {
  override name = 'FetchError';
  constructor(
    readonly url: string,
    readonly kind: FailureKind,
    message: string,
    readonly status?: number,
    /** A 503 or 429's Retry-After, in ms (HostLimits). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }

  /** Retrying the same URL is pointless: it does not have this file, or has another one. */
  get permanent(): boolean {
    if (['not-found', 'wrong-size', 'mismatch', 'protocol', 'refused', 'tls'].includes(this.kind)) return true;
    if (this.kind === 'status' && this.status !== undefined) return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
    return false;
  }
}

/**
 * Failures of the host, not of the path asked for: any URL on that mirror would fail alike (it stalls, refuses
 * connections, cuts, trickles, fails TLS), so the mirror is given up on for the part. Any other failure (404, wrong
 * size, wrong bytes, a malformed answer...) is the URL's: a .jigdo may list a part under several paths on one mirror.
 */
const HOST_FAILURES: ReadonlySet<FailureKind> = new Set(['down', 'timeout', 'connect', 'slow', 'reset', 'short', 'tls']);

/** Whether `e` is the host's failure (see HOST_FAILURES); a 5xx, 408 or 429 is the server's state, not the file's (a 4xx is the path's: FetchError.permanent). */
export const ofHost = (e: FetchError): boolean => HOST_FAILURES.has(e.kind) || (e.kind === 'status' && !e.permanent);

/** Classifies an error thrown by undici or by our stream handling. */
export function toFetchError(url: string, err: unknown): FetchError {
  if (err instanceof FetchError) return err;
  const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code;
  const msg = errorMessage(err);
  if (code !== undefined && TLS_CODE.test(code)) {
    // (the message of the error that has the code: fetch() wraps it in a 'fetch failed')
    const coded = (err as { code?: string }).code === undefined ? (err as { cause?: unknown }).cause : err;
    // A damaged record or the server's internal error may not happen again: a cut, not a verdict on the mirror.
    return new FetchError(url, TRANSIENT_TLS.test(code) ? 'reset' : 'tls', `TLS: ${tlsReason(code, errorMessage(coded))}`);
  }
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new FetchError(url, 'timeout', 'no response headers in time');
    case 'UND_ERR_BODY_TIMEOUT':
      return new FetchError(url, 'timeout', 'stalled: no data in time');
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new FetchError(url, 'timeout', 'connect timeout');
    case 'ERR_TLS_HANDSHAKE_TIMEOUT':
      return new FetchError(url, 'timeout', 'TLS: handshake timeout');
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return new FetchError(url, 'short', 'body shorter than its Content-Length');
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'EPIPE':
      return new FetchError(url, 'reset', `connection cut (${code === 'UND_ERR_SOCKET' ? msg : code})`);
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
      return new FetchError(url, 'connect', `cannot connect (${code})`);
    case 'UND_ERR_ABORTED':
    case 'ABORT_ERR':
      return new FetchError(url, 'aborted', 'aborted');
    // Our own URLs are checked before a request (HttpClient.get), and redirects are followed by redirected-get.ts, which
    // names a bad Location itself: these are left for what undici or URL still refuse, in our words, never retried.
    case 'UND_ERR_INVALID_ARG':
      return new FetchError(url, 'protocol', `request refused by the HTTP client: ${msg}`);
    case 'ERR_INVALID_URL': {
      const input = (err as { input?: unknown }).input;
      return new FetchError(url, 'protocol', `malformed address${typeof input === 'string' ? ` (${JSON.stringify(input.slice(0, 200))})` : ''}`);
    }
    default:
      if ((err as Error)?.name === 'AbortError') return new FetchError(url, 'aborted', 'aborted');
      return new FetchError(url, 'reset', msg);
  }
}

/**
 * Codes of a failed TLS handshake: Node's (ERR_TLS_*), OpenSSL's (ERR_SSL_*) and the certificate checks' (X509 verify
 * codes: CERT_HAS_EXPIRED, DEPTH_ZERO_SELF_SIGNED_CERT, UNABLE_TO_VERIFY_LEAF_SIGNATURE...). Asking again gets the
 * same answer: they were taken for cuts ('reset') and retried every round, their messages a raw OpenSSL line.
 * (ERR_TLS_HANDSHAKE_TIMEOUT is a stall, not a refusal: a timeout.)
 */
/** TLS failures of one connection (a damaged record, a server's internal error), not of the mirror's setup. */
const TRANSIENT_TLS = /DECRYPTION_FAILED|BAD_RECORD_MAC|INTERNAL_ERROR|UNEXPECTED_EOF/;
const TLS_CODE = /^(?!ERR_TLS_HANDSHAKE_TIMEOUT$)(ERR_SSL_|ERR_TLS_|CERT_|CRL_|UNABLE_TO_|ERROR_IN_C|DEPTH_ZERO_|INVALID_CA$|INVALID_PURPOSE$|PATH_LENGTH_EXCEEDED$|HOSTNAME_MISMATCH$)|SELF_SIGNED/;

/**
 * A TLS failure in a few words: the reason field of an OpenSSL error line (`...:error:0A00010B:SSL routines:
 * ssl3_get_record:wrong version number:file:line:`), else the message's first line (`self-signed certificate`).
 */
function tlsReason(code: string, msg: string): string {
  const reason = /error:[0-9A-F]+:[^:\n]*:[^:\n]*:([^:\n]+)/i.exec(msg)?.[1]?.trim() ?? msg.split('\n', 1)[0]!.trim();
  const text = reason || code.toLowerCase().replace(/_/g, ' ');
  // The usual cause: an http:// server (or port) named in an https:// URL.
  return code === 'ERR_SSL_WRONG_VERSION_NUMBER' ? `${text} (the server does not speak TLS there: http, not https?)` : text;
}
