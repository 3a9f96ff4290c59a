import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, test } from 'node:test';
import { BerthError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import {
  checkAdvertiseAddress,
  isLoopbackAddress,
  joinedAdvertiseAddress,
  localAddressTowards,
  operatorIsLocal,
} from './advertise-address.js';

describe('the advertise address of a joined agent', () => {
  test('loopback addresses', () => {
    for (const ip of ['127.0.0.1', '127.0.5.2', '::1', '::ffff:127.0.0.1'])
      assert.ok(isLoopbackAddress(ip), ip);
    for (const ip of ['10.1.2.3', '0.0.0.0', '::', 'fd00::1']) assert.ok(!isLoopbackAddress(ip), ip);
  });

  test('an operator URL on loopback or localhost is on this host; another address is not', async () => {
    assert.equal(await operatorIsLocal('https://127.0.0.1:7946'), true);
    assert.equal(await operatorIsLocal('https://[::1]:7946'), true);
    assert.equal(await operatorIsLocal('https://localhost:7946'), true);
    assert.equal(await operatorIsLocal('https://10.1.2.3:7946'), false);
  });

  test('an explicit loopback address with an operator on another host is refused, with the reason', async () => {
    await assert.rejects(checkAdvertiseAddress('127.0.0.1', 'https://10.1.2.3:7946'), (error: unknown) => {
      assert.ok(error instanceof BerthError);
      assert.match(
        error.message,
        /^--advertise-addr 127\.0\.0\.1 is loopback, but the operator at https:\/\/10\.1\.2\.3:7946 is on another host: other nodes could not reach this node's replicas/,
      );
      return true;
    });
    // Loopback with a loopback operator (every node on this host), or a real address: accepted.
    await checkAdvertiseAddress('127.0.3.1', 'https://127.0.0.1:7946');
    await checkAdvertiseAddress('10.1.2.4', 'https://10.1.2.3:7946');
    assert.equal(
      await joinedAdvertiseAddress({
        operatorUrl: 'https://127.0.0.1:1',
        explicit: '127.0.9.9',
        log: silentLogger(),
      }),
      '127.0.9.9',
    );
  });

  test('by default it is the local address of a connection to the operator', async () => {
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as { port: number };
      assert.equal(await localAddressTowards(`https://127.0.0.1:${port}`), '127.0.0.1');
      assert.equal(
        await joinedAdvertiseAddress({
          operatorUrl: `https://127.0.0.1:${port}`,
          explicit: undefined,
          log: silentLogger(),
        }),
        '127.0.0.1',
      );
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('detection keeps trying while the operator is not up, until told to stop', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    let attempts = 0;
    await assert.rejects(
      joinedAdvertiseAddress({
        operatorUrl: `https://127.0.0.1:${port}`,
        explicit: undefined,
        log: silentLogger(),
        stopped: () => ++attempts >= 2,
      }),
      /ECONNREFUSED/,
    );
    assert.equal(attempts, 2);
  });
});
