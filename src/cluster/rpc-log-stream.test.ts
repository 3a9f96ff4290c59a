import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import type { NodeAgent, ReplicaLogLine } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import { ConnectedNodeAgent } from './connected-node-agent.js';
import { LOG_WINDOW_CHUNKS } from './rpc-log-stream.js';
import { serveNodeAgent } from './serve-node-agent.js';

/**
 * Log streams over the agent connection (a real WebSocket on loopback), against a node whose log
 * is produced as it is pulled: lines arrive whole and in order, a reader that stops reading stops
 * the node's reading (credit), leaving ends the node's stream, and errors are rebuilt.
 */
const produced = { count: 0, ended: false };
const line = (i: number): ReplicaLogLine => ({
  at: `2026-01-01T00:00:00.${String(i).padStart(9, '0')}Z`,
  stream: 'stdout',
  text: `line ${i}`,
});

const node = {
  name: 'n',
  logs: (name: string, options: { tail?: number }) =>
    (async function* () {
      produced.count = 0;
      produced.ended = false;
      try {
        if (name === 'missing') throw new BerthError('ERR_CONTAINER_NOT_FOUND', 'no replica missing');
        for (let i = 0; i < (options.tail ?? Infinity); i++) {
          produced.count = i + 1;
          await new Promise((resolve) => setImmediate(resolve));
          yield line(i);
        }
      } finally {
        produced.ended = true;
      }
    })(),
} as unknown as NodeAgent;

describe('log streams over the agent connection', () => {
  let server: WebSocketServer;
  const remote = new ConnectedNodeAgent('n');

  before(async () => {
    server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => server.once('listening', resolve));
    const accepted = new Promise<WebSocket>((resolve) => server.once('connection', resolve));
    const agentSide = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
    serveNodeAgent(agentSide, node, silentLogger());
    remote.attach(await accepted);
    await new Promise((resolve) => agentSide.once('open', resolve));
  });

  after(async () => {
    for (const client of server.clients) client.terminate();
    await new Promise((resolve) => server.close(resolve));
  });

  test('every line arrives, in order, and the stream ends', async () => {
    const got: string[] = [];
    for await (const l of remote.logs('r', { tail: 3000 })) got.push(l.text);
    assert.equal(got.length, 3000);
    assert.deepEqual(got.slice(0, 2), ['line 0', 'line 1']);
    assert.equal(got.at(-1), 'line 2999');
  });

  test('a reader that stops reading stops the node; leaving ends its stream', async () => {
    const iterator = remote.logs('r', {})[Symbol.asyncIterator]();
    await iterator.next();
    // Time for the node to run ahead as far as its credit lets it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const bound = (LOG_WINDOW_CHUNKS + 1) * 256 + 1;
    assert.ok(produced.count <= bound, `the node read ${produced.count} lines ahead (bound ${bound})`);
    await iterator.return?.();
    for (let i = 0; i < 100 && !produced.ended; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(produced.ended, true);
  });

  test('an error of the node is rebuilt on the operator', async () => {
    await assert.rejects(
      (async () => {
        for await (const l of remote.logs('missing', {})) void l;
      })(),
      (error: unknown) => error instanceof BerthError && error.code === 'ERR_CONTAINER_NOT_FOUND',
    );
  });
});
