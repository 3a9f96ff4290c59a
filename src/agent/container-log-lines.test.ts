import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { demultiplexLogLines, MAX_LOG_LINE_BYTES, normaliseTimestamp } from './container-log-lines.js';

function frame(stream: 1 | 2, text: string | Buffer): Buffer {
  const payload = typeof text === 'string' ? Buffer.from(text) : text;
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

async function lines(chunks: Buffer[]) {
  const out = [];
  const source = (async function* () {
    yield* chunks;
  })();
  for await (const line of demultiplexLogLines(source, () => new Date('2024-01-01T00:00:00Z')))
    out.push(line);
  return out;
}

describe('container log lines', () => {
  it('normalises timestamps to nine fraction digits', () => {
    for (const [input, expected] of [
      ['2024-05-01T10:00:00.1Z', '2024-05-01T10:00:00.100000000Z'],
      ['2024-05-01T10:00:00Z', '2024-05-01T10:00:00.000000000Z'],
      ['2024-05-01T10:00:00.123456789Z', '2024-05-01T10:00:00.123456789Z'],
      ['2024-05-01T12:00:00.5+02:00', '2024-05-01T10:00:00.500000000Z'],
      ['not-a-time', null],
    ] as const) {
      assert.equal(normaliseTimestamp(input), expected, input);
    }
  });

  it('splits frames into lines per stream, across chunk and frame boundaries', async () => {
    const all = Buffer.concat([
      frame(1, '2024-05-01T10:00:00.1Z hello\n2024-05-01T10:00:00.2Z wor'),
      frame(2, '2024-05-01T10:00:00.3Z oops\n'),
      frame(1, 'ld\n'),
      frame(1, '2024-05-01T10:00:00.4Z no newline'),
    ]);
    // Every possible cut into single bytes.
    const bytes = [...all].map((b) => Buffer.from([b]));
    const got = await lines(bytes);
    assert.deepEqual(got, [
      { at: '2024-05-01T10:00:00.100000000Z', stream: 'stdout', text: 'hello' },
      { at: '2024-05-01T10:00:00.300000000Z', stream: 'stderr', text: 'oops' },
      { at: '2024-05-01T10:00:00.200000000Z', stream: 'stdout', text: 'world' },
      { at: '2024-05-01T10:00:00.400000000Z', stream: 'stdout', text: 'no newline' },
    ]);
  });

  it('cuts a line longer than the cap and drops the rest up to its newline', async () => {
    const long = `2024-05-01T10:00:00Z ${'x'.repeat(MAX_LOG_LINE_BYTES * 3)}\n2024-05-01T10:00:01Z next\n`;
    const got = await lines([frame(1, long)]);
    assert.equal(got.length, 2);
    assert.ok(Buffer.byteLength(got[0]!.text) < MAX_LOG_LINE_BYTES + 64);
    assert.match(got[0]!.text, /line cut at 16 KiB/);
    assert.equal(got[1]!.text, 'next');
  });
});
