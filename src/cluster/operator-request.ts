/**
 * One JSON request to the operator's cluster endpoint over HTTPS: joining, renewing, and the
 * admin CLI's calls. The operator is recognised by its certificate's role, not its host name.
 */
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { PeerCertificate } from 'node:tls';
import { BerthError, errorFromWire } from '../core/errors.js';
import { identityOf } from './certificates.js';

export interface TlsClientOptions {
  ca?: string;
  cert?: string;
  key?: string;
}

/** The peer must hold the operator's certificate from the cluster CA; its host name does not matter (NAT). */
export function checkOperatorIdentity(_host: string, certificate: PeerCertificate): Error | undefined {
  const { role } = identityOf(certificate);
  return role === 'operator'
    ? undefined
    : new Error(`the peer's certificate is not the operator's (role "${role}")`);
}

function tlsOptions(tls: TlsClientOptions): RequestOptions {
  return {
    ...(tls.ca === undefined
      ? { rejectUnauthorized: false }
      : { ca: tls.ca, rejectUnauthorized: true, checkServerIdentity: checkOperatorIdentity }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls.key === undefined ? {} : { key: tls.key }),
  };
}

function unreachableOperator(url: string, error: Error): BerthError {
  return new BerthError('ERR_AGENT_UNREACHABLE', `cannot reach the operator at ${url}: ${error.message}`, {
    cause: error,
  });
}

/**
 * A request whose answer is a stream (a log stream): the body as it arrives once the operator
 * answered 200; an error answer is rebuilt. Nothing heard for `idleMs` ends the stream.
 */
export function requestStream(
  url: string,
  tls: TlsClientOptions,
  path: string,
  body: unknown,
  idleMs: number,
): Promise<IncomingMessage> {
  const target = new URL(path, url);
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      target,
      {
        method: 'POST',
        timeout: idleMs,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
        ...tlsOptions(tls),
      },
      (response) => {
        const status = response.statusCode ?? 0;
        if (status === 200) {
          resolve(response);
          return;
        }
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          let parsed: unknown = undefined;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            parsed = undefined;
          }
          reject(errorFromWire(parsed, `the operator answered POST ${path} with HTTP ${status}`));
        });
      },
    );
    request.on('timeout', () => request.destroy(new Error(`nothing came for ${idleMs} ms`)));
    request.on('error', (error) => reject(unreachableOperator(url, error)));
    request.end(text);
  });
}

/** One JSON request over HTTPS. With `ca`, the operator's certificate must chain to it. */
export function requestJson(
  url: string,
  tls: TlsClientOptions,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const target = new URL(path, url);
  const text = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      target,
      {
        method,
        timeout: 30_000,
        headers: {
          accept: 'application/json',
          ...(text === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }),
        },
        ...tlsOptions(tls),
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          let parsed: unknown = undefined;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            parsed = undefined;
          }
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(parsed);
          else reject(errorFromWire(parsed, `the operator answered ${method} ${path} with HTTP ${status}`));
        });
      },
    );
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', (error) => reject(unreachableOperator(url, error)));
    request.end(text);
  });
}
