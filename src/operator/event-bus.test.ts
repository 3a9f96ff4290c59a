import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventBus } from './event-bus.js';

test('events are numbered, held in a bounded ring, and read from an id on', () => {
  const bus = new EventBus(3, () => new Date('2024-01-01T00:00:00Z'));
  const seen: number[] = [];
  const unsubscribe = bus.subscribe((event) => seen.push(event.id));
  for (const type of ['a', 'b', 'c', 'd']) bus.publish(type, { type });
  unsubscribe();
  bus.publish('e');
  assert.deepEqual(seen, [1, 2, 3, 4]);
  assert.deepEqual(
    bus.since(0).map((event) => event.id),
    [3, 4, 5],
  );
  assert.deepEqual(
    bus.since(4).map((event) => event.type),
    ['e'],
  );
  assert.equal(bus.lastId, 5);
  assert.equal(bus.since(0)[0]?.at, '2024-01-01T00:00:00.000Z');
});
