import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SeenDeliveries } from './seen-deliveries.js';

void test('remembers at most its capacity of ids, forgetting the oldest first', () => {
  const seen = new SeenDeliveries(3);
  for (const id of ['a', 'b', 'c', 'd']) assert.equal(seen.remember(id), true);
  assert.equal(seen.size, 3);
  assert.equal(seen.remember('d'), false);
  assert.equal(seen.remember('a'), true, 'the oldest id was forgotten');
});

void test('a long id is recognised when replayed, and kept as a short hash', () => {
  const seen = new SeenDeliveries(10);
  const long = 'x'.repeat(10_000);
  assert.equal(seen.remember(long), true);
  assert.equal(seen.remember(long), false);
  assert.equal(seen.remember(`${long}y`), true);
});
