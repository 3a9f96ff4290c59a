/**
 * The event stream on the operator's --listen port (read-only, like /metrics):
 *
 *   GET /v1/events?since=ID   the held events after ID as JSON: { events: OperatorEvent[], lastId }
 *   GET /v1/events            Server-Sent Events from now on (`id:` is the event's id, `event:` its
 *                             type, `data:` the event as JSON); with Last-Event-ID, the held events
 *                             after it first, so a client that reconnects misses nothing still held
 *
 * A client that reads too slowly is cut off once MAX_BUFFERED_BYTES wait for it (it resumes with
 * Last-Event-ID) rather than making the operator hold its backlog; a comment every KEEPALIVE_MS
 * keeps proxies and the server's idle timeout from closing a quiet stream.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EventBus, OperatorEvent } from './event-bus.js';

const KEEPALIVE_MS = 15_000;
const MAX_BUFFERED_BYTES = 1024 * 1024;

function parseId(value: unknown): number | null {
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value)) return null;
  return Number(value);
}

const sseFrame = (event: OperatorEvent) =>
  `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;

function streamEvents(bus: EventBus, request: FastifyRequest, reply: FastifyReply): void {
  reply.hijack();
  const out = reply.raw;
  out.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
  });
  const send = (text: string): void => {
    if (out.destroyed) return;
    out.write(text);
    if (out.writableLength > MAX_BUFFERED_BYTES) out.destroy();
  };
  // Held events first, then live ones: subscribing before reading the ring loses none between.
  const lastSeen = parseId(request.headers['last-event-id']);
  let sentUpTo = lastSeen ?? bus.lastId;
  const unsubscribe = bus.subscribe((event) => {
    if (event.id <= sentUpTo) return;
    sentUpTo = event.id;
    send(sseFrame(event));
  });
  send(': berth events\n\n');
  for (const event of bus.since(sentUpTo)) {
    sentUpTo = event.id;
    send(sseFrame(event));
  }
  const keepalive = setInterval(() => send(': keepalive\n\n'), KEEPALIVE_MS);
  out.once('close', () => {
    clearInterval(keepalive);
    unsubscribe();
  });
}

export function registerEventRoutes(app: FastifyInstance, bus: EventBus): void {
  app.get('/v1/events', async (request, reply) => {
    const since = (request.query as Record<string, unknown>)['since'];
    if (since === undefined) {
      streamEvents(bus, request, reply);
      return reply;
    }
    const id = parseId(since);
    if (id === null) {
      return reply
        .code(400)
        .send({ code: 'ERR_BAD_REQUEST', message: 'since wants the id of an event (a whole number)' });
    }
    return { events: bus.since(id), lastId: bus.lastId };
  });
}
