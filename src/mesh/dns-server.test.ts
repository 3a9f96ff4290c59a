import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import dnsPacket from 'dns-packet';
import { createLogger } from '../core/log.js';
import { createDnsServer, type DnsServer } from './dns-server.js';

const log = createLogger({ level: 'silent' });

async function ask(
  server: { host: string; port: number },
  name: string,
  type: 'A' | 'AAAA' = 'A',
  from = '127.0.0.1',
): Promise<dnsPacket.DecodedPacket & { rcode?: string }> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, from, resolve));
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

/** A stand-in upstream resolver that holds every question until the test answers it. */
async function heldUpstream(): Promise<{
  port: number;
  questions: { query: dnsPacket.DecodedPacket; raw: Buffer; port: number }[];
  /** Answers a held question with `address`, from the upstream's own socket or from `via`. */
  answer(index: number, address: string, options?: { id?: number; via?: Socket }): void;
  waitFor(count: number): Promise<void>;
  close(): void;
}> {
  const socket = createSocket('udp4');
  const questions: { query: dnsPacket.DecodedPacket; raw: Buffer; port: number }[] = [];
  socket.on('message', (raw, remote) =>
    questions.push({ query: dnsPacket.decode(raw), raw, port: remote.port }),
  );
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    questions,
    answer(index, address, options = {}) {
      const held = questions[index]!;
      const message = dnsPacket.encode({
        id: options.id ?? held.query.id ?? 0,
        type: 'response',
        flags: dnsPacket.RECURSION_AVAILABLE,
        questions: held.query.questions ?? [],
        answers: [{ type: 'A', class: 'IN', name: held.query.questions![0]!.name, ttl: 60, data: address }],
      });
      (options.via ?? socket).send(message, held.port, '127.0.0.1');
    },
    async waitFor(count) {
      for (let tries = 0; questions.length < count && tries < 300; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.ok(questions.length >= count, `upstream saw ${questions.length} of ${count} questions`);
    },
    close: () => socket.close(),
  };
}

/** Sends `count` questions from one socket at once; resolves with the answers that came back by id. */
async function flood(server: DnsServer, names: string[]): Promise<Map<number, string | undefined>> {
  const socket = createSocket('udp4');
  const answers = new Map<number, string | undefined>();
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  socket.on('message', (message) => {
    const decoded = dnsPacket.decode(message);
    answers.set(decoded.id ?? -1, (decoded as { rcode?: string }).rcode);
  });
  names.forEach((name, index) =>
    socket.send(
      dnsPacket.encode({ type: 'query', id: index + 1, questions: [{ type: 'A', class: 'IN', name }] }),
      server.port,
      server.host,
    ),
  );
  for (let tries = 0; tries < 100; tries++) await new Promise((resolve) => setTimeout(resolve, 10));
  socket.close();
  return answers;
}

describe('DNS relay under a flood and against spoofing', () => {
  test('a flood from one client is capped per client, and another client is still answered', async () => {
    const upstream = await heldUpstream();
    const server = await createDnsServer({
      host: '127.0.0.1',
      port: 0,
      resolve: () => undefined,
      upstream: ['127.0.0.1'],
      upstreamPort: upstream.port,
      maxRelaysPerClient: 4,
      upstreamTimeoutMs: 5000,
      log,
    });
    try {
      const answers = await flood(
        server,
        Array.from({ length: 20 }, (_, index) => `flood-${index}.test`),
      );
      // Four relayed and still waiting upstream; the other sixteen refused at once.
      assert.equal(upstream.questions.length, 4);
      assert.equal(answers.size, 16);
      assert.ok([...answers.values()].every((rcode) => rcode === 'REFUSED'));

      const other = ask(server, 'other.test', 'A', '127.0.0.2');
      await upstream.waitFor(5);
      upstream.answer(4, '192.0.2.9');
      const answer = await other;
      assert.equal(answer.rcode, 'NOERROR');
      assert.deepEqual(
        answer.answers?.map((a) => ('data' in a ? a.data : null)),
        ['192.0.2.9'],
      );
    } finally {
      await server.close();
      upstream.close();
    }
  });

  test('a client past its rate is refused until time refills its budget', async () => {
    let now = 0;
    const server = await createDnsServer({
      host: '127.0.0.1',
      port: 0,
      resolve: () => undefined,
      upstream: ['127.0.0.1'],
      upstreamPort: 9, // nothing answers: every relay fails with SERVFAIL, after the timeout
      upstreamTimeoutMs: 50,
      relayRatePerClient: 1,
      relayBurstPerClient: 2,
      now: () => now,
      log,
    });
    try {
      const rcodes: (string | undefined)[] = [];
      for (let index = 0; index < 3; index++) rcodes.push((await ask(server, `r${index}.test`)).rcode);
      assert.deepEqual(rcodes, ['SERVFAIL', 'SERVFAIL', 'REFUSED']);
      now += 1000;
      assert.equal((await ask(server, 'later.test')).rcode, 'SERVFAIL');
    } finally {
      await server.close();
    }
  });

  test('an answer from another address or port, or with another id, is ignored', async () => {
    const upstream = await heldUpstream();
    const spoofer = createSocket('udp4');
    await new Promise<void>((resolve) => spoofer.bind(0, '127.0.0.1', resolve));
    const server = await createDnsServer({
      host: '127.0.0.1',
      port: 0,
      resolve: () => undefined,
      upstream: ['127.0.0.1'],
      upstreamPort: upstream.port,
      upstreamTimeoutMs: 5000,
      log,
    });
    try {
      const pending = ask(server, 'bank.test');
      await upstream.waitFor(1);
      const relayed = upstream.questions[0]!;
      // The relayed question carries an id of the server's choosing, not the client's.
      assert.notEqual(relayed.query.id, 4242);
      upstream.answer(0, '203.0.113.66', { via: spoofer });
      upstream.answer(0, '203.0.113.67', { id: ((relayed.query.id ?? 0) + 1) & 0xffff });
      await new Promise((resolve) => setTimeout(resolve, 100));
      upstream.answer(0, '192.0.2.10');
      const answer = await pending;
      assert.equal(answer.id, 4242);
      assert.deepEqual(
        answer.answers?.map((a) => ('data' in a ? a.data : null)),
        ['192.0.2.10'],
      );
    } finally {
      await server.close();
      spoofer.close();
      upstream.close();
    }
  });
});
