import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NodeAgent, ReplicaLogLine } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import { createAgentClient } from './client.js';
import { createAgentServer } from './server.js';

/**
 * A `logs` call over the HTTP agent API (plain HTTP on loopback; the engine side is proven in
 * test/cli/logs.test.ts): the lines cross as NDJSON, errors as the error raised, a bad call is
 * refused with its field named.
 */
const seen: { options: unknown; ended: boolean } = { options: null, ended: false };
const agent = {
  name: 'n',
  logs: (name: string, options: unknown) =>
    (async function* (): AsyncGenerator<ReplicaLogLine> {
      seen.options = options;
      seen.ended = false;
      try {
        if (name === 'missing') throw new BerthError('ERR_CONTAINER_NOT_FOUND', 'no replica missing');
        for (let i = 0; ; i++) {
          await new Promise((resolve) => setImmediate(resolve));
          yield {
            at: `2026-01-01T00:00:00.${String(i).padStart(9, '0')}Z`,
            stream: i % 2 ? 'stderr' : 'stdout',
            text: `line ${i}`,
          };
          if (i === 999 && name !== 'endless') return;
        }
      } finally {
        seen.ended = true;
      }
    })(),
} as unknown as NodeAgent;

const server = createAgentServer({ agent, token: 'secret', log: silentLogger() });
let client: NodeAgent;

before(async () => {
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  client = createAgentClient({ url, token: 'secret', nodeName: 'n' });
});

after(async () => {
  await client.close();
  await server.close();
});

test('the lines of a replica cross whole and in order, with the options given', async () => {
  const lines: ReplicaLogLine[] = [];
  for await (const line of client.logs('r', { tail: 5, sinceSeconds: 12.5 })) lines.push(line);
  assert.equal(lines.length, 1000);
  assert.deepEqual(lines[1], { at: '2026-01-01T00:00:00.000000001Z', stream: 'stderr', text: 'line 1' });
  assert.deepEqual(seen.options, { tail: 5, sinceSeconds: 12.5 });
});

test('a reader that leaves ends the stream on the agent', async () => {
  for await (const line of client.logs('endless', { follow: true })) if (line.text === 'line 10') break;
  for (let i = 0; i < 100 && !seen.ended; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(seen.ended, true);
});

test('errors come back as raised; a call out of bounds is refused naming the field', async () => {
  const drain = async (lines: AsyncIterable<ReplicaLogLine>) => {
    for await (const line of lines) void line;
  };
  await assert.rejects(drain(client.logs('missing', {})), (error: unknown) => {
    return error instanceof BerthError && error.code === 'ERR_CONTAINER_NOT_FOUND';
  });
  await assert.rejects(drain(client.logs('r', { tail: -1 })), (error: unknown) => {
    return error instanceof BerthError && error.code === 'ERR_BAD_REQUEST' && /tail/.test(error.message);
  });
});
