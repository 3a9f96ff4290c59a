/**
 * The kernel data plane of a node's routing mesh: published TCP ports DNATed by nftables
 * (nftables-ruleset.ts) instead of relayed by a balancer in this process. This file is the only
 * one that runs `nft`; it runs in whichever process hosts the node's mesh (the mesh host of
 * `berth agent` and `berth run`, or the agent itself for in-process meshes), because that process
 * owns the published ports and must replace or remove the table with them.
 *
 * Where nftables cannot be used (not root, no nf_tables, no `nft`), `auto` falls back to the
 * user-space balancer and says why.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import type { Logger } from '../core/log.js';
import type { MeshBackend } from '../api/types.js';
import {
  nftTableName,
  nftTableOwner,
  renderNftRemoval,
  renderNftRuleset,
  type KernelPort,
} from './nftables-ruleset.js';

export type DataPlaneChoice = 'auto' | 'nftables' | 'userspace';
export const DATA_PLANE_CHOICES: readonly DataPlaneChoice[] = ['auto', 'nftables', 'userspace'];
/** What a node's mesh uses for its published TCP ports. */
export type DataPlane = 'nftables' | 'userspace';

export interface KernelDataPlane {
  /** Makes the kernel serve exactly `ports` (a port without backends is left to user space), atomically. */
  serve(ports: readonly KernelPort[]): Promise<void>;
  /**
   * Connections the kernel keeps on `backend` for `published` that are not closed yet (conntrack),
   * as a reading of conntrack started after `notBefore` (a `performance.now()` time) shows them.
   */
  openConnections(
    published: number,
    backend: Pick<MeshBackend, 'host' | 'port'>,
    notBefore: number,
  ): Promise<number>;
  /** Removes every rule berth added for this address. */
  close(): Promise<void>;
}

const NFT_CANDIDATES = ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft', 'nft'];
const CONNTRACK = '/proc/net/nf_conntrack';
const ROUTES = '/proc/net/route';
/** conntrack states of a connection that still carries (or may carry) data. */
const CLOSED_STATES = new Set(['TIME_WAIT', 'CLOSE', 'LAST_ACK']);

function runNft(nft: string, script: string, check = false): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(nft, [...(check ? ['-c'] : []), '-f', '-'], (error, _stdout, stderr) => {
      if (error) reject(new Error(`${nft}: ${stderr.trim() || error.message}`));
      else resolve();
    });
    child.stdin?.end(script);
  });
}

/** The `nft` that can change this host's rules, or why there is none. */
async function findNft(address: string): Promise<{ nft: string } | { why: string }> {
  if (process.getuid?.() !== 0) return { why: 'not running as root' };
  let last = 'no nft command found';
  for (const nft of NFT_CANDIDATES) {
    try {
      // A dry run of a real table: the binary, netlink and nf_tables' NAT all have to work.
      await runNft(
        nft,
        renderNftRuleset(nftTableName(address, process.pid), address, [
          { port: 1, backends: [{ host: address, port: 1 }] },
        ]),
        true,
      );
      return { nft };
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
  }
  return { why: last };
}

/** A TCP flow as conntrack sees it: original destination, then where the reply comes from. */
function flowKey(address: string, published: number, backend: Pick<MeshBackend, 'host' | 'port'>): string {
  return `${address}:${published}>${backend.host}:${backend.port}`;
}

/**
 * An open TCP flow of /proc/net/nf_conntrack: its state, the original tuple's destination and the
 * reply tuple's source (the backend's side; extra fields such as counters may come between).
 */
const CONNTRACK_FLOW =
  /^\S+\s+\d+\s+tcp\s+\d+\s+\d+\s+(\S+)\s+src=\S+ dst=(\S+) sport=\d+ dport=(\d+) .*?src=(\S+) dst=\S+ sport=(\d+) /gm;

/**
 * Open TCP flows of a conntrack table, by original destination and backend (flowKey), read in one
 * pass: tables hold tens of thousands of closed flows (TIME_WAIT lasts two minutes) after a burst of
 * short connections, and every drain of a rollout asks about them several times a second.
 */
export function openFlows(table: string): Map<string, number> {
  const flows = new Map<string, number>();
  for (const [, state, dst, dport, src, sport] of table.matchAll(CONNTRACK_FLOW)) {
    if (CLOSED_STATES.has(state ?? '')) continue;
    const key = `${dst}:${dport}>${src}:${sport}`;
    flows.set(key, (flows.get(key) ?? 0) + 1);
  }
  return flows;
}

/** Counts conntrack entries of connections to `address:published` that the kernel sent to `backend`. */
export function countConntrack(
  table: string,
  address: string,
  published: number,
  backend: Pick<MeshBackend, 'host' | 'port'>,
): number {
  // `backend` is where the kernel sent the connections: a container's bridge address for a local one.
  return openFlows(table).get(flowKey(address, published, backend)) ?? 0;
}

/** `a.b.c.d` as /proc/net/route writes addresses: a 32-bit number in the host's byte order. */
function routeNumber(ip: string): number {
  const bytes = ip.split('.').map(Number);
  if (endianness() === 'BE') bytes.reverse();
  return bytes.reduce((n, byte, i) => n + byte * 2 ** (8 * i), 0);
}

/** The interface this host routes `ip` through (longest prefix of /proc/net/route); null when none. */
export function routeInterface(routes: string, ip: string): string | null {
  const target = routeNumber(ip);
  let best: { device: string; bits: number } | null = null;
  for (const line of routes.split('\n').slice(1)) {
    const [device, destination, , , , , , mask] = line.trim().split(/\s+/);
    if (!device || !destination || !mask || !/^[\w.-]+$/.test(device) || /^\.+$/.test(device)) continue;
    const [dest, bits] = [parseInt(destination, 16), parseInt(mask, 16)];
    if ((target & bits) >>> 0 !== dest) continue;
    const length = bits.toString(2).replaceAll('0', '').length;
    if (best === null || length > best.bits) best = { device, bits: length };
  }
  return best?.device ?? null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `nft list tables ip` ('' when it cannot be read). */
function listTables(nft: string): Promise<string> {
  return new Promise<string>((resolve) =>
    execFile(nft, ['list', 'tables', 'ip'], (error, stdout) => resolve(error ? '' : stdout)),
  );
}

/** Removes the tables of berth processes that are gone (killed, crashed): nothing stale is served. */
async function removeLeftovers(nft: string, log: Logger): Promise<void> {
  const listing = await listTables(nft);
  for (const [, table] of listing.matchAll(/^table ip (\S+)$/gm)) {
    const owner = table === undefined ? null : nftTableOwner(table);
    if (table === undefined || owner === null || owner === process.pid || alive(owner)) continue;
    await runNft(nft, renderNftRemoval(table)).then(
      () => log.info({ table }, 'removed the nftables table of a mesh that is gone'),
      (error: unknown) => log.warn({ table, err: error }, 'could not remove a leftover nftables table'),
    );
  }
}

/** A reading of conntrack's table: when it started (`performance.now()`) and its open flows. */
interface ConntrackReading {
  started: number;
  done: boolean;
  flows: Promise<Map<string, number>>;
}

class NftablesDataPlane implements KernelDataPlane {
  private closed = false;
  readonly table: string;
  /** Bridges that route loopback-sourced packets (route_localnet), checked or set by this process. */
  private readonly localnet = new Set<string>();
  /** The latest reading of conntrack's table, shared by the drains that poll it. */
  private reading: ConntrackReading | null = null;
  /** The reading that starts once the current one is done, for callers that need a newer one. */
  private next: Promise<Map<string, number>> | null = null;

  constructor(
    private readonly nft: string,
    private readonly address: string,
    private readonly log: Logger,
  ) {
    this.table = nftTableName(address, process.pid);
  }

  async serve(ports: readonly KernelPort[]): Promise<void> {
    if (this.closed) return;
    const unreachable = await this.routeLoopbackTo(ports);
    const reachable = ports.map((p) => ({
      ...p,
      // A container the kernel cannot reach from here is DNATed to its published port instead.
      backends: p.backends.map(({ local, ...b }) =>
        local && !unreachable.has(local.host) ? { ...b, local } : b,
      ),
    }));
    await runNft(this.nft, renderNftRuleset(this.table, this.address, reachable));
  }

  /**
   * A node address on loopback (127.0.0.0/8) DNATed to a container on a bridge: the kernel drops a
   * packet with a loopback source routed out of a non-loopback interface unless that interface has
   * route_localnet, as kube-proxy and Docker (without its userland proxy) set it. Set only on the
   * bridges of this node's replicas; returns the containers it could not be set for.
   */
  private async routeLoopbackTo(ports: readonly KernelPort[]): Promise<Set<string>> {
    const unreachable = new Set<string>();
    if (!this.address.startsWith('127.')) return unreachable;
    const hosts = new Set(ports.flatMap((p) => p.backends.flatMap((b) => (b.local ? [b.local.host] : []))));
    if (hosts.size === 0) return unreachable;
    const routes = await readFile(ROUTES, 'utf8').catch(() => '');
    for (const host of hosts) {
      const device = routeInterface(routes, host);
      if (device === 'lo' || (device !== null && this.localnet.has(device))) continue;
      try {
        if (device === null) throw new Error(`no route to ${host}`);
        const path = `/proc/sys/net/ipv4/conf/${device}/route_localnet`;
        if ((await readFile(path, 'utf8')).trim() !== '1') {
          await writeFile(path, '1\n');
          this.log.info({ device }, 'route_localnet set on a bridge: loopback clients reach its containers');
        }
        this.localnet.add(device);
      } catch (error) {
        unreachable.add(host);
        this.log.warn({ host, device, err: error }, 'a local replica is reached through its published port');
      }
    }
    return unreachable;
  }

  async openConnections(
    published: number,
    backend: Pick<MeshBackend, 'host' | 'port'>,
    notBefore: number,
  ): Promise<number> {
    const flows = await this.flowsSince(notBefore);
    return flows.get(flowKey(this.address, published, backend)) ?? 0;
  }

  /**
   * The open flows of a reading of conntrack's table started after `notBefore`. One reading at a
   * time, shared: the drains of a rollout (every backend that left a table, on every push) poll at
   * once, and concurrent readings of a large table (the kernel writes it out as text, tens of
   * thousands of TIME_WAIT flows after a burst of short connections) took seconds each. A caller
   * that needs a newer reading than the one in progress joins the one queued after it.
   */
  private flowsSince(notBefore: number): Promise<Map<string, number>> {
    const current = this.reading;
    if (current !== null && current.started > notBefore) return current.flows;
    if (current !== null && !current.done) {
      this.next ??= current.flows.then(() => {
        this.next = null;
        return this.read().flows;
      });
      return this.next;
    }
    return this.read().flows;
  }

  private read(): ConntrackReading {
    const reading: ConntrackReading = {
      started: performance.now(),
      done: false,
      // Without conntrack's table the drain cannot be watched: the replica's grace period bounds it.
      flows: readFile(CONNTRACK, 'utf8')
        .catch(() => '')
        .then(openFlows)
        .finally(() => (reading.done = true)),
    };
    this.reading = reading;
    return reading;
  }

  async close(): Promise<void> {
    this.closed = true;
    await runNft(this.nft, renderNftRemoval(this.table));
    await this.restoreLocalnet();
  }

  /**
   * route_localnet without the guard of a berth table (its input chain drops packets to 127/8
   * from other interfaces) would expose the host's loopback services to containers: switched off
   * again on the bridges this mesh used it on (a mesh host killed before it could do so leaves it
   * to its successor), unless another mesh's table still needs it.
   */
  private async restoreLocalnet(): Promise<void> {
    if (this.localnet.size === 0) return;
    const listing = await listTables(this.nft);
    if (
      [...listing.matchAll(/^table ip (\S+)$/gm)].some(
        ([, t]) => t !== undefined && nftTableOwner(t) !== null,
      )
    )
      return;
    for (const device of this.localnet) {
      await writeFile(`/proc/sys/net/ipv4/conf/${device}/route_localnet`, '0\n').catch((error: unknown) =>
        this.log.warn({ device, err: error }, 'could not switch route_localnet off again'),
      );
    }
    this.localnet.clear();
  }
}

/**
 * The kernel data plane for the mesh on `address` as `choice` asks, or null for user space. Tables
 * left by mesh hosts that crashed are removed first: nothing stale is served.
 * `nftables` fails when nftables cannot be used; `auto` falls back to user space.
 */
export async function openKernelDataPlane(
  choice: DataPlaneChoice,
  address: string,
  log: Logger,
): Promise<KernelDataPlane | null> {
  if (choice === 'userspace') {
    log.info({ dataPlane: 'userspace' }, 'routing mesh data plane: user space (chosen)');
    return null;
  }
  const found = await findNft(address);
  if ('why' in found) {
    if (choice === 'nftables') throw new Error(`the nftables data plane cannot be used: ${found.why}`);
    log.info(
      { dataPlane: 'userspace', why: found.why },
      'routing mesh data plane: user space (nftables not available)',
    );
    return null;
  }
  await removeLeftovers(found.nft, log);
  const plane = new NftablesDataPlane(found.nft, address, log);
  await plane.serve([]);
  log.info(
    { dataPlane: 'nftables', nft: found.nft, table: plane.table },
    'routing mesh data plane: nftables (kernel DNAT)',
  );
  return plane;
}

export function isDataPlaneChoice(value: unknown): value is DataPlaneChoice {
  return typeof value === 'string' && (DATA_PLANE_CHOICES as readonly string[]).includes(value);
}
