import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { logStreamMessages } from './log-stream.js';
import type { ReplicaLogLine } from './types.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function* burst(count: number): AsyncGenerator<ReplicaLogLine> {
  for (let i = 0; i < count; i++) {
    if (i % 1000 === 0) await new Promise((resolve) => setImmediate(resolve));
    yield { at: '2024-01-01T00:00:00.000000000Z', stream: 'stdout', text: `line ${i}` };
  }
}

test('a long stream holds nothing per line while it runs (heap retained, after a full collection)', async () => {
  const lines = 200_000;
  gc();
  const base = process.memoryUsage().heapUsed;
  let retainedMiB = NaN;
  let count = 0;
  for await (const message of logStreamMessages(burst(lines), new AbortController().signal)) {
    if ('line' in message) count += 1;
    if (count === lines - 1) {
      gc();
      retainedMiB = (process.memoryUsage().heapUsed - base) / 2 ** 20;
    }
  }
  assert.equal(count, lines);
  // A closure left per line (a race against the abort promise) held over 100 MiB here.
  assert.ok(retainedMiB < 8, `heap retained while streaming: ${retainedMiB.toFixed(1)} MiB`);
});
