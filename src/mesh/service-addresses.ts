import { BerthError } from '../core/errors.js';

/** The default range of service addresses; `--service-addresses` changes it, `off` turns discovery off. */
export const DEFAULT_SERVICE_ADDRESSES = '10.234.0.0/16';

/** The range to use, from the option's value: null when discovery is `off`. */
export function discoveryRange(option: string): string | null {
  return option === 'off' ? null : option;
}

/**
 * Service addresses: the range a node takes its per-service addresses from, pure. The first
 * address of the range serves DNS to the node's containers; every service gets one of the others,
 * and the node's balancer for that service listens there on the service's target ports, so two
 * services can both use port 80.
 */
export interface ServiceRange {
  cidr: string;
  /** First and last usable address, as 32-bit numbers. */
  first: number;
  last: number;
  /** Where the node's DNS server answers. */
  dns: string;
}

/** Parses an IPv4 CIDR of at least 4 addresses (/30), such as the default 10.234.0.0/16. */
export function parseServiceRange(cidr: string): ServiceRange {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr.trim());
  const octets = match ? match.slice(1, 5).map(Number) : [];
  const bits = match ? Number(match[5]) : NaN;
  if (!match || octets.some((o) => o > 255) || !(bits >= 8 && bits <= 30)) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `service addresses must be an IPv4 range from /8 to /30 such as 10.234.0.0/16, got "${cidr}"`,
    );
  }
  const base = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - bits);
  const network = base - (base % size);
  if (network !== base) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `service addresses "${cidr}" is not the start of its range (did you mean ${formatIp(network)}/${bits}?)`,
    );
  }
  // Skip the network and broadcast addresses, which some stacks refuse to bind.
  return {
    cidr: `${formatIp(network)}/${bits}`,
    first: network + 1,
    last: network + size - 2,
    dns: formatIp(network + 1),
  };
}

export function formatIp(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/**
 * Which address each service has on this node. A service keeps its address for as long as it
 * exists (connections and resolver caches stay valid); a new one gets the address its name hashes
 * to, or the next free one, so the same services usually get the same addresses after a restart.
 */
export class ServiceAddressBook {
  private readonly range: ServiceRange;
  private readonly byService = new Map<string, number>();
  private readonly taken = new Set<number>();

  constructor(range: ServiceRange) {
    this.range = range;
  }

  /** The address of `service` (`namespace/name`), given one if it has none yet. */
  assign(service: string): string {
    const known = this.byService.get(service);
    if (known !== undefined) return formatIp(known);
    // The DNS address is not handed out.
    const slots = this.range.last - this.range.first;
    if (this.taken.size >= slots) {
      throw new BerthError(
        'ERR_STATE',
        `no service address left in ${this.range.cidr} for ${service}; use a larger range`,
      );
    }
    let slot = hash(service) % slots;
    while (this.taken.has(this.range.first + 1 + slot)) slot = (slot + 1) % slots;
    const address = this.range.first + 1 + slot;
    this.taken.add(address);
    this.byService.set(service, address);
    return formatIp(address);
  }

  release(service: string): void {
    const address = this.byService.get(service);
    if (address === undefined) return;
    this.byService.delete(service);
    this.taken.delete(address);
  }

  lookup(service: string): string | null {
    const address = this.byService.get(service);
    return address === undefined ? null : formatIp(address);
  }
}

/** FNV-1a, 32 bits: stable across processes and versions. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
