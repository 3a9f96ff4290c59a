import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { EventBus, type OperatorEvent } from './event-bus.js';
import { registerEventRoutes } from './event-routes.js';

let app: FastifyInstance;
let base: string;
const bus = new EventBus(3);

before(async () => {
  app = Fastify();
  registerEventRoutes(app, bus);
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await app.close();
});

/** The SSE events of a stream until `count` arrived. */
async function readEvents(response: Response, count: number): Promise<OperatorEvent[]> {
  const events: OperatorEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body!) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    for (const data of buffer.match(/^data: .*$/gm) ?? [])
      events.push(JSON.parse(data.slice(6)) as OperatorEvent);
    buffer = buffer.slice(buffer.lastIndexOf('\n\n') + 2);
    if (events.length >= count) break;
  }
  return events;
}

test('since=ID answers the held events after it as JSON; a bad id is refused', async () => {
  for (const type of ['a', 'b', 'c', 'd']) bus.publish(type);
  const body = (await (await fetch(`${base}/v1/events?since=2`)).json()) as {
    events: OperatorEvent[];
    lastId: number;
  };
  assert.deepEqual(
    body.events.map((e) => e.type),
    ['c', 'd'],
  );
  assert.equal(body.lastId, 4);
  assert.equal((await fetch(`${base}/v1/events?since=x`)).status, 400);
});

test('the SSE stream sends events from now on, and with Last-Event-ID the held ones after it first', async () => {
  const controller = new AbortController();
  const resumed = await fetch(`${base}/v1/events`, {
    headers: { 'last-event-id': '3' },
    signal: controller.signal,
  });
  assert.equal(resumed.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const live = await fetch(`${base}/v1/events`, { signal: controller.signal });
  bus.publish('e', { service: 'default/web' });
  const [fromResume, fromNow] = await Promise.all([readEvents(resumed, 2), readEvents(live, 1)]);
  controller.abort();
  assert.deepEqual(
    fromResume.map((e) => [e.id, e.type]),
    [
      [4, 'd'],
      [5, 'e'],
    ],
  );
  assert.deepEqual(
    fromNow.map((e) => [e.id, e.type, e.data]),
    [[5, 'e', { service: 'default/web' }]],
  );
});
