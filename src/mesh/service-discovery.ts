import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Logger } from '../core/log.js';
import { CLUSTER_ZONE, containerResolverSettings, lookupZoneName } from './cluster-zone.js';
import { createDnsServer, type DnsServer, type ZoneRecord } from './dns-server.js';
import { ServiceAddressBook, parseServiceRange, type ServiceRange } from './service-addresses.js';

const run = promisify(execFile);
const RETRY_MS = 10_000;

// The range's default and parsing live with the addresses: a CLI loads them without the DNS server.
export { DEFAULT_SERVICE_ADDRESSES, discoveryRange } from './service-addresses.js';

/**
 * Service discovery on one node: containers reach another service as `name` (in their own
 * namespace), `name.namespace` or `name.namespace.svc.berth.internal`, on any node (see
 * cluster-zone.ts for the names).
 *
 * - The range of service addresses is made local to the host (`ip route replace local RANGE dev
 *   lo`), so the agent can listen on any address in it without configuring each one, and
 *   containers reach those addresses through their default gateway, the host.
 * - The first address answers DNS: the containers of this node are created with it as their
 *   first resolver and search domains that lead into the cluster zone. Names outside the zone go
 *   to the host's resolvers.
 * - Each service gets an address of its own (ServiceAddressBook); the node mesh listens there on
 *   the service's target ports and balances over its healthy replicas on every node.
 */
export interface ServiceDiscovery {
  /**
   * Resolver settings for a new container of `namespace`; null while this node cannot serve DNS
   * (then the container keeps Docker's resolvers rather than wait on a server that does not answer).
   */
  containerDns(namespace: string): Promise<ContainerDns | null>;
  /** Prepares the host and starts DNS, once; false (said once in the log) when it cannot. */
  ready(): Promise<boolean>;
  /** Address of a service (`namespace/name`), given one if needed. */
  assign(service: string): string;
  release(service: string): void;
  /** The services that DNS answers for from now on. */
  setServices(services: Iterable<string>): void;
  close(): Promise<void>;
}

/** A container's resolvers (in order), search domains and resolver options (`ndots:3`). */
export interface ContainerDns {
  servers: string[];
  search: string[];
  options: string[];
}

export interface ServiceDiscoveryOptions {
  /** IPv4 CIDR, e.g. 10.234.0.0/16. */
  addresses: string;
  log: Logger;
  /** The host's resolver configuration, read for the upstream servers; default /etc/resolv.conf. */
  resolvConf?: string;
  /** DNS port: 53 in real use; tests of the server alone pick another. */
  dnsPort?: number;
  /** Makes the range local to the host; the default runs `ip route replace local RANGE dev lo`. */
  prepareHost?: (range: ServiceRange) => Promise<void>;
}

export function createServiceDiscovery(options: ServiceDiscoveryOptions): ServiceDiscovery {
  const range = parseServiceRange(options.addresses);
  const log = options.log.child({ discovery: range.cidr });
  const book = new ServiceAddressBook(range);
  const prepareHost = options.prepareHost ?? makeRangeLocal;
  let services: ReadonlySet<string> = new Set<string>();
  let upstream: Promise<string[]> | null = null;
  const upstreamServers = (): Promise<string[]> =>
    (upstream ??= hostResolvers(options.resolvConf ?? '/etc/resolv.conf', range));
  let dns: DnsServer | null = null;
  let starting: Promise<boolean> | null = null;
  /** After a failed start: when to try again (the address may have been busy for a moment). */
  let retryAt = 0;
  let failures = 0;

  const resolve = (name: string): ZoneRecord => {
    const found = lookupZoneName(name, services);
    if (typeof found === 'string') return found;
    const address = book.lookup(found.service);
    return address === null ? 'no-such-name' : { address };
  };

  const start = async (): Promise<boolean> => {
    const servers = await upstreamServers();
    try {
      await prepareHost(range);
      dns = await createDnsServer({
        host: range.dns,
        port: options.dnsPort ?? 53,
        zone: CLUSTER_ZONE,
        resolve,
        upstream: servers,
        log,
      });
    } catch (error) {
      retryAt = Date.now() + RETRY_MS;
      if (failures++ > 0) return false;
      log.warn(
        { err: error },
        `service discovery is off on this node: ${error instanceof Error ? error.message : String(error)} ` +
          '(it needs root, or CAP_NET_ADMIN and CAP_NET_BIND_SERVICE, and the `ip` command; ' +
          `published ports still work; trying again every ${RETRY_MS / 1000} s)`,
      );
      return false;
    }
    log.info(
      { dns: range.dns, upstream: servers },
      failures > 0
        ? 'service discovery is on again: containers reach services by name'
        : 'service discovery: containers reach services by name',
    );
    failures = 0;
    return true;
  };

  const ready = async (): Promise<boolean> => {
    if (starting === null && Date.now() < retryAt) return false;
    starting ??= start();
    const ok = await starting;
    // A failed start is tried again later, not on every table.
    if (!ok) starting = null;
    return ok;
  };

  return {
    async containerDns(namespace) {
      if (!(await ready())) return null;
      // The host's own resolvers come second, for when this node's agent is not running; the
      // loopback ones are no use inside a container.
      const fallback = (await upstreamServers()).filter((server) => !isLoopback(server));
      return { servers: [range.dns, ...fallback], ...containerResolverSettings(namespace) };
    },
    ready,
    assign: (service) => book.assign(service),
    release: (service) => book.release(service),
    setServices(names) {
      services = new Set(names);
    },
    async close() {
      await starting;
      await dns?.close();
      dns = null;
    },
  };
}

async function makeRangeLocal(range: ServiceRange): Promise<void> {
  try {
    await run('ip', ['route', 'replace', 'local', range.cidr, 'dev', 'lo']);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(
      `cannot make ${range.cidr} local with \`ip route\`: ${stderr || (error as Error).message}`,
    );
  }
}

/** Nameservers of the host's resolv.conf, without our own DNS address (no relay loop). */
async function hostResolvers(path: string, range: ServiceRange): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .map((line) => /^\s*nameserver\s+(\S+)/.exec(line)?.[1])
    .filter((server): server is string => server !== undefined && server !== range.dns);
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}
