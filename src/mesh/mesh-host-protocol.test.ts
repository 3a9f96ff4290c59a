import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lineReader, parseMeshHostRequest } from './mesh-host-protocol.js';

const table = {
  version: 3,
  routes: [
    {
      service: 'default/web',
      published: 8080,
      protocol: 'tcp',
      backends: [{ id: 'n1/web.1', host: '127.0.0.1', port: 30001 }],
    },
  ],
};

describe('mesh host protocol', () => {
  test('requests are checked; the answer to a bad one carries its id when it has one', () => {
    const cases: [line: string, expect: { id: number | null; method?: string; error?: RegExp }][] = [
      ['{"id":1,"method":"hello"}', { id: 1, method: 'hello' }],
      [
        JSON.stringify({ id: 2, method: 'apply', params: { table, drainTimeoutMs: 0 } }),
        { id: 2, method: 'apply' },
      ],
      ['{"id":3,"method":"containerDns","params":{"namespace":"shop"}}', { id: 3, method: 'containerDns' }],
      ['not json', { id: null, error: /one JSON object per line/ }],
      ['[1]', { id: null, error: /a JSON object/ }],
      ['{"method":"hello"}', { id: null, error: /needs an id/ }],
      ['{"id":4,"method":"exec"}', { id: 4, error: /unknown method "exec"/ }],
      ['{"id":5,"method":"containerDns","params":{"namespace":"../etc"}}', { id: 5, error: /DNS label/ }],
      [
        JSON.stringify({
          id: 6,
          method: 'apply',
          params: { table: { ...table, version: 'x' }, drainTimeoutMs: 0 },
        }),
        { id: 6, error: /version/ },
      ],
      [
        JSON.stringify({ id: 7, method: 'apply', params: { table, drainTimeoutMs: 10 ** 9 } }),
        { id: 7, error: /drainTimeoutMs/ },
      ],
    ];
    for (const [line, expect] of cases) {
      const parsed = parseMeshHostRequest(line);
      assert.equal(parsed.id, expect.id, line);
      if (expect.error) {
        assert.ok('error' in parsed, line);
        assert.equal(parsed.error.code, 'ERR_BAD_REQUEST');
        assert.match(parsed.error.message, expect.error, line);
      } else {
        assert.ok('request' in parsed, `${line}: ${'error' in parsed ? parsed.error.message : ''}`);
        assert.equal(parsed.request.method, expect.method);
      }
    }
  });

  test('lines are split across chunks, and a line over the bound breaks the reader once', () => {
    const lines: string[] = [];
    let tooLong = 0;
    const read = lineReader(
      (line) => lines.push(line),
      () => tooLong++,
      10,
    );
    read(Buffer.from('ab'));
    read(Buffer.from('c\nde\n\nf'));
    read(Buffer.from('g\n'));
    assert.deepEqual(lines, ['abc', 'de', 'fg']);
    read(Buffer.from('0123456'));
    read(Buffer.from('789abc\nlater\n'));
    read(Buffer.from('more\n'));
    assert.equal(tooLong, 1);
    assert.deepEqual(lines, ['abc', 'de', 'fg']);
  });
});
