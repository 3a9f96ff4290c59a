import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mergeInTimeOrder } from './log-merge.js';

async function* from(items: string[]): AsyncGenerator<string> {
  for (const item of items) {
    await new Promise((resolve) => setImmediate(resolve));
    yield item;
  }
}

test('lines of several sources come out in time order, ties in source order', async () => {
  const merged: string[] = [];
  for await (const item of mergeInTimeOrder(
    [from(['1', '4', '6']), from([]), from(['2', '3', '4', '9'])],
    (s) => s,
  )) {
    merged.push(item);
  }
  assert.deepEqual(merged, ['1', '2', '3', '4', '4', '6', '9']);
});

test('stopping early ends every source', async () => {
  const ended: number[] = [];
  const source = (index: number) =>
    (async function* () {
      try {
        yield* from(['1', '2', '3']);
      } finally {
        ended.push(index);
      }
    })();
  for await (const item of mergeInTimeOrder([source(0), source(1)], (s) => s)) {
    if (item === '2') break;
  }
  assert.deepEqual(ended.sort(), [0, 1]);
});
