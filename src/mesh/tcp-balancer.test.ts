import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { after, describe, test } from 'node:test';
import { getBody, startNamedBackend } from '../../test/helpers/loopback-http.js';
import { silentLogger } from '../log.js';
import { createTcpBalancer } from './tcp-balancer.js';

/** Generous: a loaded CI machine can stall the event loop; this is a bound, not a timing assert. */
const connectTimeoutMs = 10_000;

describe('TCP balancer', () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
  });

  test('spreads connections round-robin over the backends', async () => {
    const a = await startNamedBackend('a');
    const b = await startNamedBackend('b');
    servers.push(a.server, b.server);
    const lb = await createTcpBalancer({ host: '127.0.0.1', port: 0, log: silentLogger(), connectTimeoutMs });
    lb.setBackends([a.backend, b.backend]);
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await getBody(lb.port));
    assert.deepEqual(answers.sort(), ['a', 'a', 'a', 'b', 'b', 'b']);
    await lb.close();
  });

  test('a dead backend is skipped: no request fails', async () => {
    const a = await startNamedBackend('a');
    const dead = await startNamedBackend('dead');
    servers.push(a.server);
    await new Promise<void>((resolve) => dead.server.close(() => resolve()));
    const lb = await createTcpBalancer({ host: '127.0.0.1', port: 0, log: silentLogger(), connectTimeoutMs });
    lb.setBackends([dead.backend, a.backend]);
    const answers = await Promise.all(Array.from({ length: 10 }, () => getBody(lb.port)));
    assert.deepEqual(new Set(answers), new Set(['a']));
    await lb.close();
  });

  test('a removed backend gets no new connections, and its in-flight request finishes (drain)', async () => {
    const slow = await startNamedBackend('slow', 1000);
    const fast = await startNamedBackend('fast');
    servers.push(slow.server, fast.server);
    const lb = await createTcpBalancer({ host: '127.0.0.1', port: 0, log: silentLogger(), connectTimeoutMs });
    lb.setBackends([slow.backend]);
    const inFlight = getBody(lb.port);
    while (lb.activeConnections('slow') === 0) await new Promise((r) => setTimeout(r, 5));
    assert.equal(lb.activeConnections('slow'), 1);
    lb.setBackends([fast.backend]);
    assert.equal(await getBody(lb.port), 'fast');
    assert.equal(await inFlight, 'slow');
    assert.equal(await lb.drained('slow', 5000), true);
    await lb.close();
  });

  test('with no backend a connection is closed, not left hanging', async () => {
    const lb = await createTcpBalancer({ host: '127.0.0.1', port: 0, log: silentLogger(), connectTimeoutMs });
    await assert.rejects(getBody(lb.port));
    await lb.close();
  });
});
