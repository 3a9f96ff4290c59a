import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import dnsPacket from 'dns-packet';
import { createLogger } from '../core/log.js';
import { createDnsServer, type DnsServer } from './dns-server.js';

const log = createLogger({ level: 'silent' });

async function ask(
  server: { host: string; port: number },
  name: string,
  type: 'A' | 'AAAA' = 'A',
): Promise<dnsPacket.DecodedPacket & { rcode?: string }> {
  const socket = createSocket('udp4');
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer for ${name}`)), 3000);
      socket.once('message', (message) => {
        clearTimeout(timer);
        resolve(dnsPacket.decode(message));
      });
      socket.send(
        dnsPacket.encode({
          type: 'query',
          id: 4242,
          flags: dnsPacket.RECURSION_DESIRED,
          questions: [{ type, class: 'IN', name }],
        }),
        server.port,
        server.host,
      );
    });
  } finally {
    socket.close();
  }
}

describe('DNS server of a node', () => {
  let upstream: DnsServer;
  let server: DnsServer;
  let lonely: DnsServer;

  before(async () => {
    // Stands in for the host's resolver: knows example.test only.
    upstream = await createDnsServer({
      host: '127.0.0.1',
      port: 0,
      resolve: (name) => (name === 'example.test' ? '192.0.2.7' : null),
      upstream: [],
      log,
    });
    server = await createDnsServer({
      host: '127.0.0.1',
      port: 0,
      resolve: (name) => (name === 'web.shop' ? '10.234.5.6' : name.endsWith('.shop') ? null : undefined),
      upstream: ['127.0.0.1'],
      upstreamPort: upstream.port,
      log,
    });
    lonely = await createDnsServer({
      host: '127.0.0.1',
      port: 0,
      resolve: () => undefined,
      upstream: [],
      log,
    });
  });

  after(async () => {
    await Promise.all([upstream.close(), server.close(), lonely.close()]);
  });

  test('answers a service name with its address, in any case, with a short TTL', async () => {
    const answer = await ask(server, 'Web.Shop');
    assert.equal(answer.id, 4242);
    assert.equal(answer.rcode, 'NOERROR');
    assert.equal(answer.flag_aa, true);
    assert.deepEqual(
      answer.answers?.map((a): unknown[] => [a.type, 'data' in a ? a.data : null, 'ttl' in a ? a.ttl : null]),
      [['A', '10.234.5.6', 5]],
    );
  });

  test('a name of ours that nothing has is NXDOMAIN; AAAA of a service is empty, not an error', async () => {
    assert.equal((await ask(server, 'nope.shop')).rcode, 'NXDOMAIN');
    const v6 = await ask(server, 'web.shop', 'AAAA');
    assert.equal(v6.rcode, 'NOERROR');
    assert.deepEqual(v6.answers, []);
  });

  test('other names are relayed to the host resolver, untouched', async () => {
    const relayed = await ask(server, 'example.test');
    assert.equal(relayed.rcode, 'NOERROR');
    assert.deepEqual(
      relayed.answers?.map((a) => ('data' in a ? a.data : null)),
      ['192.0.2.7'],
    );
    assert.equal((await ask(server, 'missing.test')).rcode, 'NXDOMAIN');
  });

  test('without an upstream, other names are refused so the resolver asks its next server', async () => {
    assert.equal((await ask(lonely, 'example.test')).rcode, 'REFUSED');
  });
});
