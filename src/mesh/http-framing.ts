/**
 * Where a request's body ends, as the mesh reads it from the client: the one thing the mesh and
 * every replica must agree on, or a client could hide a second request in the first one's body
 * (request smuggling, RFC 9112 11.2). Node's parser (llhttp, strict) already refuses most
 * ambiguous requests: Transfer-Encoding with Content-Length, `chunked` not last, duplicated or
 * invalid Content-Length, obsolete line folding, whitespace before the colon. This verdict is
 * for what it lets through (e.g. `Transfer-Encoding: x` then `Transfer-Encoding: chunked`, which
 * it reads as chunked) and repeats its checks, so the mesh does not depend on a parser version.
 *
 * The mesh never passes the client's framing on: it forwards the body it read with framing it
 * writes itself (`content-length: N` or `transfer-encoding: chunked`).
 */
export type RequestFraming =
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  | { kind: 'ambiguous'; reason: string };

/** Longest Content-Length taken (2^53 - 1 has 16 digits): a number, not a string, from here on. */
const CONTENT_LENGTH = /^\d{1,15}$/;

function valuesOf(rawHeaders: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2)
    if (rawHeaders[i]?.toLowerCase() === name) values.push(rawHeaders[i + 1] ?? '');
  return values;
}

const ambiguous = (reason: string): RequestFraming => ({ kind: 'ambiguous', reason });

/** The framing of a request whose head Node parsed (`httpVersion` like `1.1`, `rawHeaders` as received). */
export function requestFraming(httpVersion: string, rawHeaders: readonly string[]): RequestFraming {
  const transferEncoding = valuesOf(rawHeaders, 'transfer-encoding');
  const contentLength = valuesOf(rawHeaders, 'content-length');
  // X-Forwarded-Host is the request's Host: mesh and replica must agree on it (RFC 9112 3.2).
  const hosts = valuesOf(rawHeaders, 'host').length;
  if (hosts > 1) return ambiguous('more than one Host header');
  if (hosts === 0 && httpVersion === '1.1') return ambiguous('no Host header');
  if (transferEncoding.length > 0 && contentLength.length > 0)
    return ambiguous('both Transfer-Encoding and Content-Length');
  if (transferEncoding.length > 1) return ambiguous('more than one Transfer-Encoding header');
  if (contentLength.length > 1) return ambiguous('more than one Content-Length header');
  const [coding] = transferEncoding;
  if (coding !== undefined) {
    // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
    if (httpVersion !== '1.1') return ambiguous('Transfer-Encoding in an HTTP/1.0 request');
    // Leading and trailing blanks are optional whitespace Node already stripped; anything else
    // (another coding, a list, another spelling) is a coding some replica could read differently.
    if (coding.trim() !== 'chunked') return ambiguous('Transfer-Encoding other than chunked');
    return { kind: 'chunked' };
  }
  const [length] = contentLength;
  if (length !== undefined) {
    if (!CONTENT_LENGTH.test(length.trim())) return ambiguous('invalid Content-Length');
    return { kind: 'length', length: Number(length.trim()) };
  }
  return { kind: 'none' };
}
