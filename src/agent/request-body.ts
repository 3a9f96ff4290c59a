/**
 * The body of an agent request: JSON (or plain text, which the call's schema then refuses), read
 * up to a byte limit. Past the limit reading stops at once, so a large body costs no memory; what
 * the client sends on is dropped with the connection.
 */
import type { IncomingMessage } from 'node:http';
import { HttpRefusal } from './http-refusal.js';

const BAD_JSON = "Body is not valid JSON but content-type is set to 'application/json'";

/** The parsed body, or undefined when the request carries none; an HttpRefusal otherwise. */
export async function readRequestBody(request: IncomingMessage, limitBytes: number): Promise<unknown> {
  if (request.method === 'GET' || request.method === 'HEAD') return undefined;
  const contentType = request.headers['content-type'];
  if (contentType === undefined && !carriesBody(request)) return undefined;
  const mediaType = contentType?.split(';')[0]?.trim().toLowerCase();
  if (mediaType !== 'application/json' && mediaType !== 'text/plain') {
    throw new HttpRefusal(415, { code: 'ERR_BAD_REQUEST', message: 'Unsupported Media Type' });
  }
  const text = (await readLimited(request, limitBytes)).toString('utf8');
  if (mediaType === 'text/plain') return text;
  if (text.length === 0) {
    throw new HttpRefusal(400, {
      code: 'ERR_BAD_REQUEST',
      message: "bad request: Body cannot be empty when content-type is set to 'application/json'",
    });
  }
  return parseJson(text);
}

function carriesBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function tooLarge(limitBytes: number): HttpRefusal {
  return new HttpRefusal(413, {
    code: 'ERR_BAD_REQUEST',
    message: `request body larger than ${limitBytes} bytes`,
  });
}

function readLimited(request: IncomingMessage, limitBytes: number): Promise<Buffer> {
  if (Number(request.headers['content-length']) > limitBytes) return Promise.reject(tooLarge(limitBytes));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const stop = () => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limitBytes) {
        stop();
        chunks.length = 0;
        reject(tooLarge(limitBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks));
    };
    const onError = (error: Error) => {
      stop();
      reject(new HttpRefusal(400, { code: 'ERR_BAD_REQUEST', message: error.message }));
    };
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onError);
  });
}

/** JSON.parse, refusing what would poison a prototype once merged into an object (as fastify did). */
function parseJson(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch {
    throw new HttpRefusal(400, { code: 'ERR_BAD_REQUEST', message: BAD_JSON });
  }
  if ((text.includes('__proto__') || text.includes('constructor')) && poisoned(value)) {
    throw new HttpRefusal(400, { code: 'ERR_BAD_REQUEST', message: BAD_JSON });
  }
  return value;
}

function poisoned(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (Object.hasOwn(value, '__proto__')) return true;
  const constructor: unknown = (value as Record<string, unknown>)['constructor'];
  if (
    Object.hasOwn(value, 'constructor') &&
    constructor !== null &&
    typeof constructor === 'object' &&
    Object.hasOwn(constructor, 'prototype')
  ) {
    return true;
  }
  return Object.values(value).some(poisoned);
}
