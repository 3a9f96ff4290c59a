/**
 * The kernel data plane's rules, pure: one nftables table per node address, as kube-proxy's
 * nftables mode does it. Each published TCP port with at least one healthy backend is a DNAT to
 * `numgen random mod N` over that port's backends; the conntrack entry made by the first packet
 * keeps a connection on its backend whatever the map says later, which is what lets a drained
 * backend finish the connections it has.
 *
 * The script replaces the whole table in one `nft -f` transaction (`table; delete table; table {}`),
 * so a change is atomic: a new connection sees the old map or the new one, never none.
 */
import type { MeshBackend } from '../api/types.js';

/**
 * A published port the kernel serves: its backends, all healthy (an empty list is not served). A
 * backend with `local` (a replica of this node) is DNATed to its container's bridge address.
 */
export interface KernelPort {
  port: number;
  backends: Pick<MeshBackend, 'host' | 'port' | 'local'>[];
}

/** Where the kernel sends a backend's connections. */
export function dnatTarget(backend: Pick<MeshBackend, 'host' | 'port' | 'local'>): {
  host: string;
  port: number;
} {
  return backend.local ?? { host: backend.host, port: backend.port };
}

/**
 * The packet mark that says "DNATed from outside by berth": such a connection is masqueraded on
 * its way to a backend on another host, so that the answer comes back through this node (and its
 * conntrack entry) rather than straight to a client that never talked to the backend.
 */
export const MASQUERADE_MARK = 0x00200000;

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/**
 * berth's table for the mesh on `address` in the process `pid`: meshes on other addresses, and a
 * mesh host that is being replaced on the same one, keep their own tables (neither removes the
 * other's); the pid in the name tells a leftover of a crashed process from a live one.
 */
export function nftTableName(address: string, pid: number): string {
  if (!IPV4.test(address)) throw new Error(`the kernel data plane serves IPv4 addresses, not ${address}`);
  return `berth_${address.replaceAll('.', '_')}_p${pid}`;
}

/** The pid in the name of one of berth's tables; null for any other table. */
export function nftTableOwner(table: string): number | null {
  const match = /^berth_\d+_\d+_\d+_\d+_p(\d+)$/.exec(table);
  return match ? Number(match[1]) : null;
}

function checkTable(table: string): void {
  if (nftTableOwner(table) === null) throw new Error(`not one of berth's nftables tables: ${table}`);
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`not a TCP port: ${port}`);
  return port;
}

function checkAddress(host: string): string {
  if (!IPV4.test(host)) throw new Error(`the kernel data plane reaches IPv4 backends, not ${host}`);
  return host;
}

/** One port's rule: a random pick among its backends, each a DNAT target. */
function portRule(address: string, kernelPort: KernelPort): string {
  const targets = kernelPort.backends
    .map(dnatTarget)
    .map((b, i) => `${i} : ${checkAddress(b.host)} . ${checkPort(b.port)}`)
    .join(', ');
  return (
    `ip daddr ${address} tcp dport ${checkPort(kernelPort.port)} ` +
    `dnat ip to numgen random mod ${kernelPort.backends.length} map { ${targets} }`
  );
}

/** The `nft -f` script that makes `table` serve exactly `ports` on `address`. */
export function renderNftRuleset(table: string, address: string, ports: readonly KernelPort[]): string {
  checkTable(table);
  checkAddress(address);
  const served = [...ports].filter((p) => p.backends.length > 0).sort((a, b) => a.port - b.port);
  const rules = served.map((p) => `    ${portRule(checkAddress(address), p)}`);
  const mark = `0x${MASQUERADE_MARK.toString(16).padStart(8, '0')}`;
  const match = `ip daddr ${address} tcp dport { ${served.map((p) => p.port).join(', ')} }`;
  const marked = served.length === 0 ? [] : [`    ${match} meta mark set meta mark | ${mark}`];
  // A client on this host with a loopback source, DNATed to a container's bridge address: its
  // source must become the bridge's, or the container's answer goes nowhere.
  const loopbackMarked =
    served.length === 0 ? [] : [`    ip saddr 127.0.0.0/8 ${match} meta mark set meta mark | ${mark}`];
  return [
    // Declaring the table first makes the delete valid when it does not exist yet (a first start).
    `table ip ${table}`,
    `delete table ip ${table}`,
    `table ip ${table} {`,
    '  chain published {',
    ...rules,
    '  }',
    '  chain prerouting {',
    '    type nat hook prerouting priority -100; policy accept;',
    ...marked,
    '    jump published',
    '  }',
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    ...loopbackMarked,
    '    jump published',
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority 100; policy accept;',
    `    meta mark & ${mark} == ${mark} oifname != "lo" masquerade`,
    '  }',
    // route_localnet on a bridge (nftables.ts) would let whatever is on that bridge reach this
    // host's loopback services; only answers to connections made from here may (CVE-2020-8558).
    '  chain input {',
    '    type filter hook input priority 0; policy accept;',
    '    iifname != "lo" ip daddr 127.0.0.0/8 ct state != { established, related } drop',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The script that removes one of berth's tables, whether it exists or not. */
export function renderNftRemoval(table: string): string {
  checkTable(table);
  return `table ip ${table}\ndelete table ip ${table}\n`;
}
