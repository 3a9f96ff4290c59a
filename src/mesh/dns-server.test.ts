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

/** A stand-in for the host's resolver on loopback: knows `names`, says NXDOMAIN to the rest. */
async function fakeUpstream(names: Record<string, string>): Promise<{
  port: number;
  /** Every question it was asked, as received. */
  received: Buffer[];
  close(): void;
}> {
  const socket = createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (raw, remote) => {
    received.push(raw);
    const query = dnsPacket.decode(raw);
    const question = query.questions![0]!;
    const address = names[question.name.toLowerCase()];
    socket.send(
      dnsPacket.encode({
        id: query.id ?? 0,
        type: 'response',
        flags: dnsPacket.RECURSION_AVAILABLE | (address === undefined ? 3 : 0),
        questions: [question],
        answers:
          address === undefined
            ? []
            : [{ type: 'A', class: 'IN', name: question.name, ttl: 60, data: address }],
      }),
      remote.port,
      remote.address,
    );
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, received, close: () => socket.close() };
}

const addresses = (answer: dnsPacket.DecodedPacket): unknown[] =>
  answer.answers?.map((a) => ('data' in a ? a.data : null)) ?? [];

describe('DNS server of a node', () => {
  let upstream: Awaited<ReturnType<typeof fakeUpstream>>;
  let server: DnsServer;
  let lonely: DnsServer;

  before(async () => {
    upstream = await fakeUpstream({ 'github.com': '192.0.2.7', 'other.com': '192.0.2.8' });
    server = await createDnsServer({
      host: '127.0.0.1',
      port: 0,
      zone: 'berth.internal',
      // Greedy on purpose: it would answer any name it were asked, so only the zone keeps
      // outside names away from it.
      resolve: (name) =>
        name === 'svc.berth.internal'
          ? 'no-records'
          : name.startsWith('nope.')
            ? 'no-such-name'
            : { address: '10.234.5.6' },
      upstream: ['127.0.0.1'],
      upstreamPort: upstream.port,
      log,
    });
    lonely = await createDnsServer({
      host: '127.0.0.1',
      port: 0,
      zone: 'berth.internal',
      resolve: () => 'no-such-name',
      upstream: [],
      log,
    });
  });

  after(async () => {
    upstream.close();
    await Promise.all([server.close(), lonely.close()]);
  });

  test('answers a name of its zone with its address, in any case, with a short TTL', async () => {
    const answer = await ask(server, 'Web.Shop.SVC.berth.internal');
    assert.equal(answer.id, 4242);
    assert.equal(answer.rcode, 'NOERROR');
    assert.equal(answer.flag_aa, true);
    assert.deepEqual(
      answer.answers?.map((a): unknown[] => [a.type, 'data' in a ? a.data : null, 'ttl' in a ? a.ttl : null]),
      [['A', '10.234.5.6', 5]],
    );
  });

  test('a name of the zone that nothing has is NXDOMAIN; AAAA or an empty name is no data; none is relayed', async () => {
    const before = upstream.received.length;
    const missing = await ask(server, 'nope.shop.svc.berth.internal');
    assert.equal(missing.rcode, 'NXDOMAIN');
    assert.equal(missing.flag_aa, true);
    const v6 = await ask(server, 'web.shop.svc.berth.internal', 'AAAA');
    assert.equal(v6.rcode, 'NOERROR');
    assert.deepEqual(v6.answers, []);
    const empty = await ask(server, 'svc.berth.internal');
    assert.equal(empty.rcode, 'NOERROR');
    assert.deepEqual(empty.answers, []);
    assert.equal(upstream.received.length, before, 'names of the zone never go upstream');
  });

  test('every name outside the zone is relayed untouched and the upstream answer returned', async () => {
    // Service github in namespace com would be github.com.svc.berth.internal, never github.com.
    for (const [name, rcode, found] of [
      ['github.com', 'NOERROR', ['192.0.2.7']],
      ['other.com', 'NOERROR', ['192.0.2.8']],
      ['missing.com', 'NXDOMAIN', []],
      ['web.shop', 'NXDOMAIN', []],
      // Ends like the zone, but not at a label boundary: not the zone.
      ['evilberth.internal', 'NXDOMAIN', []],
    ] as const) {
      const before = upstream.received.length;
      const answer = await ask(server, name);
      assert.equal(answer.id, 4242, name);
      assert.equal(answer.rcode, rcode, name);
      assert.deepEqual(addresses(answer), found, name);
      assert.equal(upstream.received.length, before + 1, `${name} was asked upstream`);
      const relayed = dnsPacket.decode(upstream.received[before]!);
      assert.deepEqual(relayed.questions, [{ name, type: 'A', class: 'IN' }]);
      assert.equal(relayed.flags, dnsPacket.RECURSION_DESIRED);
    }
  });

  test('without an upstream, outside names are refused so the resolver asks its next server', async () => {
    assert.equal((await ask(lonely, 'example.test')).rcode, 'REFUSED');
    assert.equal((await ask(lonely, 'web.shop.svc.berth.internal')).rcode, 'NXDOMAIN');
  });

  test('a message of two questions is refused as malformed', async () => {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    try {
      const answer = await new Promise<dnsPacket.DecodedPacket & { rcode?: string }>((resolve) => {
        socket.once('message', (message) => resolve(dnsPacket.decode(message)));
        socket.send(
          dnsPacket.encode({
            type: 'query',
            id: 7,
            questions: [
              { type: 'A', class: 'IN', name: 'github.com' },
              { type: 'A', class: 'IN', name: 'web.shop.svc.berth.internal' },
            ],
          }),
          server.port,
          server.host,
        );
      });
      assert.equal(answer.rcode, 'FORMERR');
    } finally {
      socket.close();
    }
  });
});

/** A stand-in upstream resolver that holds every question until the test answers it. */
async function heldUpstream(): Promise<{
  port: number;
  questions: { query: dnsPacket.DecodedPacket; raw: Buffer; port: number }[];
  /** Answers a held question with `address`, from the upstream's own socket or from `via`. */
  answer(index: number, address: string, options?: { id?: number; via?: Socket; name?: string }): void;
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
      const name = options.name ?? held.query.questions![0]!.name;
      const message = dnsPacket.encode({
        id: options.id ?? held.query.id ?? 0,
        type: 'response',
        flags: dnsPacket.RECURSION_AVAILABLE,
        questions: [{ type: 'A', class: 'IN', name }],
        answers: [{ type: 'A', class: 'IN', name, ttl: 60, data: address }],
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
      zone: 'berth.internal',
      resolve: () => 'no-such-name',
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
      zone: 'berth.internal',
      resolve: () => 'no-such-name',
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

  test('relayed questions go out under random ids, each from a source port of its own', async () => {
    const upstream = await heldUpstream();
    const server = await createDnsServer({
      host: '127.0.0.1',
      port: 0,
      zone: 'berth.internal',
      resolve: () => 'no-such-name',
      upstream: ['127.0.0.1'],
      upstreamPort: upstream.port,
      upstreamTimeoutMs: 5000,
      log,
    });
    try {
      // Same client id every time: the ids upstream sees are the server's, not the client's.
      const pending = ['a.test', 'b.test', 'c.test', 'd.test'].map((name) => ask(server, name));
      await upstream.waitFor(4);
      const ids = upstream.questions.map((question) => question.query.id);
      assert.ok(
        ids.some((relayId) => relayId !== 4242),
        `relayed ids ${ids.join(', ')}`,
      );
      assert.equal(new Set(upstream.questions.map((question) => question.port)).size, 4);
      upstream.questions.forEach((_, index) => upstream.answer(index, '192.0.2.11'));
      for (const answer of await Promise.all(pending)) assert.equal(answer.id, 4242);
    } finally {
      await server.close();
      upstream.close();
    }
  });

  test('an answer from another address or port, with another id or to another question, is ignored', async () => {
    const upstream = await heldUpstream();
    const samePortElsewhere = createSocket('udp4');
    const otherPort = createSocket('udp4');
    await new Promise<void>((resolve) => samePortElsewhere.bind(upstream.port, '127.0.0.2', resolve));
    await new Promise<void>((resolve) => otherPort.bind(0, '127.0.0.1', resolve));
    const server = await createDnsServer({
      host: '127.0.0.1',
      port: 0,
      zone: 'berth.internal',
      resolve: () => 'no-such-name',
      upstream: ['127.0.0.1'],
      upstreamPort: upstream.port,
      upstreamTimeoutMs: 5000,
      log,
    });
    try {
      const pending = ask(server, 'bank.test');
      await upstream.waitFor(1);
      const relayed = upstream.questions[0]!;
      upstream.answer(0, '203.0.113.66', { via: otherPort });
      upstream.answer(0, '203.0.113.67', { via: samePortElsewhere });
      upstream.answer(0, '203.0.113.68', { id: ((relayed.query.id ?? 0) + 1) & 0xffff });
      upstream.answer(0, '203.0.113.69', { name: 'other.test' });
      await new Promise((resolve) => setTimeout(resolve, 100));
      upstream.answer(0, '192.0.2.10');
      const answer = await pending;
      assert.equal(answer.id, 4242);
      assert.deepEqual(addresses(answer), ['192.0.2.10']);
    } finally {
      await server.close();
      samePortElsewhere.close();
      otherPort.close();
      upstream.close();
    }
  });
});
