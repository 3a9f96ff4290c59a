import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BerthError } from './errors.js';
import { isLoopbackHost, parseListenAddress } from './listen-address.js';

test('listen addresses: every accepted shape, and the refusals naming the option', () => {
  const api = { option: '--listen' };
  const cluster = { option: '--cluster-listen', defaultPort: 7946 };
  const cases: [string, typeof api | typeof cluster, { host: string; port: number } | null][] = [
    ['8080', api, { host: '127.0.0.1', port: 8080 }],
    ['127.0.0.1:8080', api, { host: '127.0.0.1', port: 8080 }],
    [':8080', api, { host: '0.0.0.0', port: 8080 }],
    ['[::1]:8080', api, { host: '::1', port: 8080 }],
    ['node-1.example:9000', api, { host: 'node-1.example', port: 9000 }],
    ['127.0.0.1', api, null],
    ['127.0.0.1:99999', api, null],
    ['a:b:8080', api, null],
    ['', api, null],
    ['10.0.0.1', cluster, { host: '10.0.0.1', port: 7946 }],
    ['10.0.0.1:7000', cluster, { host: '10.0.0.1', port: 7000 }],
    ['[fe80::1]', cluster, { host: 'fe80::1', port: 7946 }],
    ['', cluster, null],
  ];
  for (const [value, options, expected] of cases) {
    if (expected === null) {
      assert.throws(
        () => parseListenAddress(value, options),
        (e: unknown) =>
          e instanceof BerthError && e.code === 'ERR_BAD_REQUEST' && e.message.includes(options.option),
        value,
      );
    } else {
      assert.deepEqual(parseListenAddress(value, options), expected, value);
    }
  }
});

test('loopback hosts: 127/8, ::1 (bracketed or not), IPv4-mapped, localhost; nothing else', () => {
  for (const host of [
    '127.0.0.1',
    '127.1.2.3',
    '::1',
    '[::1]',
    '::ffff:127.0.0.1',
    'localhost',
    'LOCALHOST',
  ]) {
    assert.equal(isLoopbackHost(host), true, host);
  }
  for (const host of ['0.0.0.0', '::', '10.0.0.5', '128.0.0.1', 'node-a', '127.example', '::ffff:10.0.0.1']) {
    assert.equal(isLoopbackHost(host), false, host);
  }
});
