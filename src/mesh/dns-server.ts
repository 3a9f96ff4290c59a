import { createSocket, type Socket } from 'node:dgram';
import dnsPacket from 'dns-packet';
import type { Logger } from '../core/log.js';

/**
 * The node's DNS server for its containers (UDP). It answers service names itself and relays
 * every other question, untouched, to the host's own resolvers — which containers could not reach
 * when they live on the host's loopback (systemd-resolved's 127.0.0.53, say).
 *
 * `resolve` decides: an address answers the name; `null` says the name is ours but nothing has it
 * (NXDOMAIN); `undefined` says the name is not ours (relayed upstream).
 */
export interface DnsServerOptions {
  host: string;
  port: number;
  resolve: (name: string) => string | null | undefined;
  /** Resolvers to relay other questions to, tried in order. */
  upstream: string[];
  /** Their port: 53 but in tests. */
  upstreamPort?: number;
  log: Logger;
  /** Seconds answers may be cached: short, so a service that goes away is forgotten quickly. */
  ttl?: number;
  upstreamTimeoutMs?: number;
}

export interface DnsServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
/** Classic DNS over UDP without EDNS: answers up to 512 bytes, which ours always fit. */
const MAX_QUERY_BYTES = 4096;

export async function createDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const ttl = options.ttl ?? 5;
  const upstreamTimeoutMs = options.upstreamTimeoutMs ?? 2000;
  const log = options.log.child({ dns: `${options.host}:${options.port}` });
  const socket: Socket = createSocket('udp4');
  const relays = new Set<Socket>();

  const reply = (message: Buffer, port: number, address: string): void => {
    socket.send(message, port, address, (error) => {
      if (error) log.debug({ err: error, client: address }, 'could not send a DNS answer');
    });
  };

  const relay = async (query: Buffer): Promise<Buffer | null> => {
    for (const server of options.upstream) {
      const answer = await new Promise<Buffer | null>((resolve) => {
        const upstream = createSocket(server.includes(':') ? 'udp6' : 'udp4');
        relays.add(upstream);
        const done = (value: Buffer | null): void => {
          clearTimeout(timer);
          relays.delete(upstream);
          upstream.close();
          resolve(value);
        };
        const timer = setTimeout(() => done(null), upstreamTimeoutMs);
        upstream.on('error', () => done(null));
        upstream.on('message', (message) => done(message));
        upstream.send(query, options.upstreamPort ?? 53, server, (error) => {
          if (error) done(null);
        });
      });
      if (answer !== null) return answer;
    }
    return null;
  };

  socket.on('message', (message, remote) => {
    if (message.length > MAX_QUERY_BYTES) return;
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return; // Not DNS: nothing sensible to answer.
    }
    const question = query.questions?.[0];
    if (query.type !== 'query' || question === undefined) return;
    const name = question.name.toLowerCase().replace(/\.$/, '');
    const address = question.class === 'IN' ? options.resolve(name) : undefined;
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

    if (address === undefined) {
      if (options.upstream.length === 0) {
        respond(RCODE.REFUSED);
        return;
      }
      void relay(message).then((answer) => {
        if (answer === null) respond(RCODE.SERVFAIL);
        else reply(answer, remote.port, remote.address);
      });
      return;
    }
    if (address === null) {
      respond(RCODE.NXDOMAIN);
      return;
    }
    // The name exists; only A records (AAAA and the rest: "no data", so resolvers do not go
    // asking another server about a name that is ours).
    respond(
      RCODE.NOERROR,
      question.type === 'A' ? [{ type: 'A', class: 'IN', name: question.name, ttl, data: address }] : [],
    );
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
      for (const upstream of relays) upstream.close();
      relays.clear();
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}
