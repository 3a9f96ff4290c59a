/**
 * Slow and idle clients of the operator's port (health, metrics, webhooks) are cut off and
 * capped, and /healthz keeps answering other clients. Limits are set small through options so
 * the tests are quick; the defaults are the same mechanism with larger numbers.
 */
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';

import type { FastifyInstance } from 'fastify';

import { silentLogger } from '../../src/core/log.js';
import { applyVerdict } from '../../src/operator/conditions.js';
import { createOperatorServer, type HttpServerLimits } from '../../src/operator/http-server.js';
import { OperatorMetrics } from '../../src/operator/metrics.js';
import type { Operator } from '../../src/operator/operator.js';
import { webhookRoutes } from '../../src/source/webhooks/webhook-routes.js';

/** An operator before its first reconcile: Reconciling, nothing run yet. */
const idleOperator = {
  lastResult: undefined,
  lastError: undefined,
  conditions: applyVerdict(
    [],
    { holds: 'Reconciling', reason: 'Progressing', message: 'starting' },
    new Date(),
  ),
} as unknown as Operator;

async function serve(limits: Partial<HttpServerLimits>): Promise<{ app: FastifyInstance; port: number }> {
  const app = createOperatorServer({ operator: idleOperator, metrics: new OperatorMetrics(), limits });
  await app.register(webhookRoutes, {
    secret: 'secret',
    branch: 'main',
    log: silentLogger(),
    onPush: () => undefined,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { app, port: address.port };
}

function open(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves when the server has closed `socket` (or reset it), with what it sent first. */
function closedByServer(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(received));
  });
}

/** Writes `text` one byte every `intervalMs` until done or closed; returns the bytes written. */
async function trickle(socket: Socket, text: string, intervalMs: number): Promise<number> {
  let written = 0;
  for (const byte of text) {
    if (socket.destroyed || socket.writableEnded || socket.closed) break;
    socket.write(byte);
    written++;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return written;
}

function healthz(port: number, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = get(
      { host: '127.0.0.1', port, path: '/healthz', localAddress, agent: false },
      (response) => {
        response.resume();
        response.once('end', () => resolve(response.statusCode ?? 0));
      },
    );
    request.once('error', reject);
    request.setTimeout(5000, () => request.destroy(new Error('no answer from /healthz')));
  });
}

// A limit that does not hold leaves a socket open forever: the timeout turns that into a failure.
void describe('operator HTTP port against slow and idle clients', { timeout: 20_000 }, () => {
  let server: { app: FastifyInstance; port: number };
  before(async () => {
    server = await serve({
      headersTimeoutMs: 400,
      requestTimeoutMs: 800,
      timeoutCheckIntervalMs: 50,
      maxConnectionsPerClient: 3,
    });
  });
  after(async () => {
    await server.app.close();
  });

  void test('a slowloris client (headers one byte at a time) is cut off before its headers end', async () => {
    const socket = await open(server.port);
    const closed = closedByServer(socket);
    const headers = 'GET /healthz HTTP/1.1\r\nHost: operator\r\nX-Slow: 0123456789abcdef\r\n\r\n';
    const written = await trickle(socket, headers, 100);
    const answer = await closed;
    assert.ok(written < headers.length, `wrote ${written} of ${headers.length} bytes before being cut off`);
    assert.match(answer, /^$|^HTTP\/1\.1 408/);
  });

  void test('a client that sends its body too slowly is cut off', async () => {
    const socket = await open(server.port);
    const closed = closedByServer(socket);
    socket.write(
      'POST /webhooks/github HTTP/1.1\r\nHost: operator\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n',
    );
    const written = await trickle(socket, 'x'.repeat(200), 50);
    await closed;
    assert.ok(written < 200, `wrote ${written} of 200 body bytes before being cut off`);
  });

  void test('connections past the per-client cap are refused; /healthz answers another client', async () => {
    const idle = await Promise.all([open(server.port), open(server.port), open(server.port)]);
    try {
      const extra = await open(server.port);
      const refused = await closedByServer(extra);
      assert.equal(refused, '');
      assert.equal(await healthz(server.port, '127.0.0.2'), 200);
    } finally {
      for (const socket of idle) socket.destroy();
    }
  });

  void test('an idle connection that never sends a request is closed', async () => {
    const socket = await open(server.port);
    assert.match(await closedByServer(socket), /^$|^HTTP\/1\.1 408/);
  });
});
