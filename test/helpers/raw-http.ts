import { connect, createServer, type Socket } from 'node:net';
import type { MeshBackend } from '../../src/api/types.js';

/** One HTTP/1.1 message as read off the wire: its first line, its headers (lower-cased names), its body. */
export interface RawMessage {
  line: string;
  headers: [string, string][];
  body: string;
}

export const headerOf = (message: RawMessage, name: string): string[] =>
  message.headers.filter(([n]) => n === name).map(([, v]) => v);

/**
 * Reads the messages in `data` as a lenient HTTP/1.1 peer would: Transfer-Encoding containing
 * `chunked` first, then Content-Length, else no body (`untilClose` for answers without either).
 * Returns the complete messages and the bytes left over.
 */
export function readMessages(data: string, untilClose = false): { messages: RawMessage[]; rest: string } {
  const messages: RawMessage[] = [];
  let rest = data;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return { messages, rest };
    const [line = '', ...fields] = rest.slice(0, end).split('\r\n');
    const headers = fields.map((f): [string, string] => {
      const colon = f.indexOf(':');
      return [f.slice(0, colon).trim().toLowerCase(), f.slice(colon + 1).trim()];
    });
    const message = { line, headers, body: '' };
    const te = headerOf(message, 'transfer-encoding').join(',');
    const cl = headerOf(message, 'content-length')[0];
    let at = end + 4;
    if (te.includes('chunked')) {
      for (;;) {
        const sizeEnd = rest.indexOf('\r\n', at);
        if (sizeEnd < 0) return { messages, rest };
        const size = parseInt(rest.slice(at, sizeEnd), 16);
        if (Number.isNaN(size) || rest.length < sizeEnd + 2 + size + 2) return { messages, rest };
        if (size === 0) {
          const trailerEnd = rest.indexOf('\r\n', sizeEnd + 2);
          if (trailerEnd < 0) return { messages, rest };
          at = trailerEnd + 2;
          break;
        }
        message.body += rest.slice(sizeEnd + 2, sizeEnd + 2 + size);
        at = sizeEnd + 2 + size + 2;
      }
    } else if (cl !== undefined) {
      const length = Number(cl);
      if (rest.length < at + length) return { messages, rest };
      message.body = rest.slice(at, at + length);
      at += length;
    } else if (untilClose && !/^HTTP\/1\.1 (1\d\d|204|304) /.test(line)) {
      message.body = rest.slice(at);
      at = rest.length;
    }
    messages.push(message);
    rest = rest.slice(at);
  }
}

/**
 * Writes `bytes` on a fresh connection to 127.0.0.1:port and collects everything until the other
 * side closes (rejects after `timeoutMs`: a connection left open is the answer no test wants).
 */
export function rawExchange(port: number, bytes: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connection still open after ${timeoutMs} ms; received ${JSON.stringify(received)}`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
  });
}

/**
 * A backend that parses requests itself, leniently (readMessages), and logs every one: a request
 * hidden in another's body by an ambiguous framing shows up here as one more request. It answers
 * each with `answer(request)`, by default 200 with the request's body echoed.
 */
export async function startCountingBackend(
  id: string,
  answer: (request: RawMessage) => string = (request) =>
    `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(request.body, 'latin1')}\r\n\r\n${request.body}`,
): Promise<{ backend: MeshBackend; requests: RawMessage[]; close: () => void }> {
  const requests: RawMessage[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      const { messages, rest } = readMessages(buffered + chunk.toString('latin1'));
      buffered = rest;
      for (const request of messages) {
        requests.push(request);
        socket.write(answer(request), 'latin1');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('no address');
  const close = (): void => {
    server.close();
    for (const socket of sockets) socket.destroy();
  };
  return { backend: { id, host: '127.0.0.1', port: address.port }, requests, close };
}
