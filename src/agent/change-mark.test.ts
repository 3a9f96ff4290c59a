import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createChangeMarks } from './change-mark.js';

test('a long poll answers at once for an old mark, on a change for the current one, and on close', async () => {
  const marks = createChangeMarks();
  const open = new AbortController();
  const first = await marks.awaitChange(null, 60_000, open.signal);
  assert.equal(first.mark, marks.current());

  const waiting = marks.awaitChange(first.mark, 60_000, open.signal);
  marks.bump();
  const second = await waiting;
  assert.notEqual(second.mark, first.mark);
  assert.equal((await marks.awaitChange(first.mark, 60_000, open.signal)).mark, second.mark);

  const unanswered = marks.awaitChange(second.mark, 60_000, open.signal);
  open.abort();
  assert.equal((await unanswered).mark, second.mark);
});

test('a restarted agent never answers a mark its predecessor gave', () => {
  assert.notEqual(createChangeMarks().current(), createChangeMarks().current());
});

test('with nothing changing, the poll ends with the same mark after its timeout', async () => {
  const marks = createChangeMarks();
  const mark = marks.current();
  assert.equal((await marks.awaitChange(mark, 5, new AbortController().signal)).mark, mark);
});
