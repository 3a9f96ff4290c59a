import { randomInt } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import dnsPacket from 'dns-packet';
import type { Logger } from '../core/log.js';

/**
 * The node's DNS server for its containers (UDP). It is authoritative for one zone only and
 * answers every name inside it itself, never upstream; every name outside it is relayed,
 * untouched, to the host's own resolvers — which containers could not reach when they live on the
 * host's loopback (systemd-resolved's 127.0.0.53, say). So nothing it serves can shadow an
 * outside name.
 */
export interface DnsServerOptions {
  host: string;
  port: number;
  /** The zone answered here (`berth.internal`): the name itself and every name under it. */
  zone: string;
  /** Looks a name of the zone up (lowercase, without the final dot). */
  resolve: (name: string) => ZoneRecord;
  /** Resolvers to relay other questions to, tried in order. */
  upstream: string[];
  /** Their port: 53 but in tests. */
  upstreamPort?: number;
  log: Logger;
  /** Seconds answers may be cached: short, so a service that goes away is forgotten quickly. */
  ttl?: number;
  upstreamTimeoutMs?: number;
  /** Relayed questions waiting for an upstream at once, all clients together (default 256). */
  maxRelaysInFlight?: number;
  /** Relayed questions waiting at once for one client address (default 32). */
  maxRelaysPerClient?: number;
  /** Relayed questions per second one client address may send, on average (default 100). */
  relayRatePerClient?: number;
  /** ... and at once after a quiet spell (default 200). */
  relayBurstPerClient?: number;
  /** Milliseconds; tests pass their own. */
  now?: () => number;
}

/** A name of the zone: its IPv4 address, a name that exists without records, or no such name. */
export type ZoneRecord = { address: string } | 'no-records' | 'no-such-name';

export interface DnsServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

/**
 * Client addresses whose relay budget is remembered. A flood from spoofed addresses cannot grow
 * the table past this: the least recently seen client is forgotten (and starts with a full budget).
 */
const MAX_TRACKED_CLIENTS = 4096;
/** Classic DNS over UDP without EDNS: answers up to 512 bytes, which ours always fit. */
const MAX_QUERY_BYTES = 4096;

export async function createDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const ttl = options.ttl ?? 5;
  const upstreamTimeoutMs = options.upstreamTimeoutMs ?? 2000;
  const log = options.log.child({ dns: `${options.host}:${options.port}` });
  const socket: Socket = createSocket('udp4');
  /** Cancels each relay waiting for an upstream, so close() leaves no socket or timer behind. */
  const relays = new Set<() => void>();
  let closed = false;

  const reply = (message: Buffer, port: number, address: string): void => {
    if (closed) return;
    socket.send(message, port, address, (error) => {
      if (error) log.debug({ err: error, client: address }, 'could not send a DNS answer');
    });
  };

  const relay = async (query: Buffer): Promise<Buffer | null> => {
    for (const server of options.upstream) {
      const answer = await askUpstream(query, server, options.upstreamPort ?? 53, upstreamTimeoutMs, relays);
      if (answer !== null) return answer;
    }
    return null;
  };
  const budget = new RelayBudget({
    maxInFlight: options.maxRelaysInFlight ?? 256,
    maxPerClient: options.maxRelaysPerClient ?? 32,
    ratePerSecond: options.relayRatePerClient ?? 100,
    burst: options.relayBurstPerClient ?? 200,
    now: options.now ?? Date.now,
  });

  const relayFor = (message: Buffer, remote: RemoteInfo, respond: (rcode: number) => void): void => {
    if (options.upstream.length === 0) {
      respond(RCODE.REFUSED);
      return;
    }
    if (!budget.take(remote.address)) {
      log.debug({ client: remote.address }, 'DNS relay budget of the client spent; refused');
      respond(RCODE.REFUSED);
      return;
    }
    void relay(message).then((answer) => {
      budget.release(remote.address);
      if (answer === null) respond(RCODE.SERVFAIL);
      else reply(answer, remote.port, remote.address);
    });
  };

  socket.on('message', (message, remote) => {
    const query = decodeQuery(message);
    const question = query?.questions?.[0];
    if (query === null || question === undefined) return; // Not a DNS query: nothing to answer.
    const recursion = (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
    const respond = (rcode: number, answers: dnsPacket.Answer[] = []): void =>
      reply(
        dnsPacket.encode({
          id: query.id ?? 0,
          type: 'response',
          flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_AVAILABLE | recursion | rcode,
          questions: [question],
          answers,
        }),
        remote.port,
        remote.address,
      );
    // One question per message, as every resolver sends: a second one could not be judged apart.
    if (query.questions!.length !== 1) {
      respond(RCODE.FORMERR);
      return;
    }
    const name = question.name.toLowerCase().replace(/\.$/, '');
    if (name !== options.zone && !name.endsWith(`.${options.zone}`)) {
      relayFor(message, remote, respond);
      return;
    }
    const answer = answerInZone(
      question,
      question.class === 'IN' ? options.resolve(name) : 'no-such-name',
      ttl,
    );
    respond(answer.rcode, answer.answers);
  });

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(options.port, options.host, () => {
      socket.off('error', reject);
      socket.on('error', (error) => log.warn({ err: error }, 'DNS socket error'));
      resolve();
    });
  });

  return {
    host: options.host,
    port: socket.address().port,
    async close() {
      closed = true;
      for (const cancel of [...relays]) cancel();
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

function decodeQuery(message: Buffer): dnsPacket.DecodedPacket | null {
  if (message.length > MAX_QUERY_BYTES) return null;
  try {
    const query = dnsPacket.decode(message);
    return query.type === 'query' ? query : null;
  } catch {
    return null;
  }
}

/** The answer to a question about a name of the zone, authoritative: it never goes upstream. */
function answerInZone(
  question: dnsPacket.Question,
  found: ZoneRecord,
  ttl: number,
): { rcode: number; answers: dnsPacket.Answer[] } {
  if (found === 'no-such-name') return { rcode: RCODE.NXDOMAIN, answers: [] };
  // The name exists; only A records (AAAA and the rest: "no data", so resolvers do not go
  // asking another server about a name that is ours).
  return {
    rcode: RCODE.NOERROR,
    answers:
      found !== 'no-records' && question.type === 'A'
        ? [{ type: 'A', class: 'IN', name: question.name, ttl, data: found.address }]
        : [],
  };
}

/**
 * Relays one query from a fresh socket (a fresh source port, which Linux picks at random) under a
 * fresh random id. The socket is connected to the server asked, so the kernel drops datagrams from
 * any other address or port, and an answer counts only if it also comes from there (checked again),
 * carries that id and answers that very question: anything else arriving (a spoofed answer racing
 * the real one) is ignored. The answer goes back with the client's own id.
 */
function askUpstream(
  query: Buffer,
  server: string,
  port: number,
  timeoutMs: number,
  relays: Set<() => void>,
): Promise<Buffer | null> {
  return new Promise<Buffer | null>((resolve) => {
    const clientId = query.readUInt16BE(0);
    const relayId = randomInt(0, 0x10000);
    const relayed = Buffer.from(query);
    relayed.writeUInt16BE(relayId, 0);
    const question = dnsPacket.decode(query).questions?.[0];
    const upstream = createSocket(isIPv6(server) ? 'udp6' : 'udp4');
    let settled = false;
    const done = (value: Buffer | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      relays.delete(cancel);
      upstream.close();
      resolve(value);
    };
    const cancel = (): void => done(null);
    relays.add(cancel);
    const timer = setTimeout(() => done(null), timeoutMs);
    upstream.on('error', () => done(null));
    upstream.on('message', (message, from) => {
      if (from.address !== server || from.port !== port) return;
      if (message.length < 12 || message.readUInt16BE(0) !== relayId) return;
      if (!answersQuestion(message, question)) return;
      const answer = Buffer.from(message);
      answer.writeUInt16BE(clientId, 0);
      done(answer);
    });
    upstream.connect(port, server, () => {
      upstream.send(relayed, (error) => {
        if (error) done(null);
      });
    });
  });
}

/** A response (QR set) whose one question is the one asked (name in any case, type, class). */
function answersQuestion(message: Buffer, asked: dnsPacket.Question | undefined): boolean {
  let answer: dnsPacket.DecodedPacket;
  try {
    answer = dnsPacket.decode(message);
  } catch {
    return false;
  }
  const question = answer.questions?.[0];
  return (
    answer.type === 'response' &&
    asked !== undefined &&
    answer.questions?.length === 1 &&
    question !== undefined &&
    question.name.toLowerCase() === asked.name.toLowerCase() &&
    question.type === asked.type &&
    question.class === asked.class
  );
}

/**
 * How many relayed questions each client may have: a token bucket per client address for the
 * rate, and counts of questions waiting, per client and in all.
 */
class RelayBudget {
  private inFlight = 0;
  private readonly clients = new Map<string, { tokens: number; at: number; inFlight: number }>();

  constructor(
    private readonly limits: {
      maxInFlight: number;
      maxPerClient: number;
      ratePerSecond: number;
      burst: number;
      now: () => number;
    },
  ) {}

  take(address: string): boolean {
    const now = this.limits.now();
    const client = this.clients.get(address) ?? { tokens: this.limits.burst, at: now, inFlight: 0 };
    // Re-inserted, so the map's order is least recently seen first.
    this.clients.delete(address);
    this.clients.set(address, client);
    this.forgetIdleClients();
    client.tokens = Math.min(
      this.limits.burst,
      client.tokens + ((now - client.at) / 1000) * this.limits.ratePerSecond,
    );
    client.at = now;
    if (this.inFlight >= this.limits.maxInFlight || client.inFlight >= this.limits.maxPerClient) return false;
    if (client.tokens < 1) return false;
    client.tokens -= 1;
    client.inFlight += 1;
    this.inFlight += 1;
    return true;
  }

  release(address: string): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    const client = this.clients.get(address);
    if (client !== undefined) client.inFlight = Math.max(0, client.inFlight - 1);
  }

  private forgetIdleClients(): void {
    for (const [address, client] of this.clients) {
      if (this.clients.size <= MAX_TRACKED_CLIENTS) return;
      // A client with questions waiting is kept: forgetting it would let it past its cap.
      if (client.inFlight === 0) this.clients.delete(address);
    }
  }
}
