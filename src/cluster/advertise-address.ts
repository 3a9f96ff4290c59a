/**
 * The address a joined node publishes its replicas on (`berth agent --join URL --advertise-addr`).
 * By default it is the local address of the agent's TCP connection to the operator, as Docker
 * Swarm detects a node's address: the address of the interface that reaches the operator, which
 * the other nodes of the cluster can reach too. A loopback address only works when the operator
 * (and so, every node it reaches) is on this host: one given explicitly while the operator is
 * elsewhere is refused at start rather than found out when traffic does not arrive.
 */
import { lookup } from 'node:dns/promises';
import { connect } from 'node:net';
import { BerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';

export function isLoopbackAddress(ip: string): boolean {
  const address = ip.replace(/^::ffff:/i, '');
  return address.startsWith('127.') || address === '::1';
}

/** The URL's host without IPv6 brackets. */
function hostOf(url: string): string {
  return new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
}

/**
 * Whether the operator at `url` is on this host: its host is a loopback address, `localhost`, or
 * a name that resolves to loopback addresses only. A name that does not resolve cannot be told;
 * it counts as another host.
 */
export async function operatorIsLocal(url: string): Promise<boolean> {
  const host = hostOf(url);
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  try {
    const addresses = await lookup(host, { all: true });
    return addresses.length > 0 && addresses.every((a) => isLoopbackAddress(a.address));
  } catch {
    return false;
  }
}

/** Refuses an explicit loopback --advertise-addr when the operator is on another host. */
export async function checkAdvertiseAddress(address: string, operatorUrl: string): Promise<void> {
  if (!isLoopbackAddress(address) || (await operatorIsLocal(operatorUrl))) return;
  throw new BerthError(
    'ERR_BAD_REQUEST',
    `--advertise-addr ${address} is loopback, but the operator at ${operatorUrl} is on another host: other nodes could not reach this node's replicas (give this host's address, or leave --advertise-addr out to use the address that reaches the operator)`,
  );
}

/** The local address of one TCP connection to the operator at `url`. */
export function localAddressTowards(url: string, timeoutMs = 10_000): Promise<string> {
  const target = new URL(url);
  const port = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostOf(url), port, timeout: timeoutMs });
    socket.once('connect', () => {
      const address = socket.localAddress;
      socket.destroy();
      if (address === undefined) reject(new Error('the connection has no local address'));
      else resolve(address.replace(/^::ffff:/i, ''));
    });
    socket.once('timeout', () => socket.destroy(new Error(`no connection within ${timeoutMs} ms`)));
    socket.once('error', reject);
  });
}

/**
 * The advertise address of a joined agent: the explicit one (checked), else the detected one.
 * The operator may not be up yet (agents are often started first): detection retries with the
 * agent's reconnect back-off (0.5 s doubling to 5 s) until it reaches it or `stopped` says so.
 */
export async function joinedAdvertiseAddress(args: {
  operatorUrl: string;
  explicit: string | undefined;
  log: Logger;
  stopped?: () => boolean;
}): Promise<string> {
  if (args.explicit !== undefined) {
    await checkAdvertiseAddress(args.explicit, args.operatorUrl);
    return args.explicit;
  }
  let retryMs = 500;
  for (;;) {
    try {
      const address = await localAddressTowards(args.operatorUrl);
      args.log.info(
        { advertise: address, operator: args.operatorUrl },
        'advertise address: the local address of the connection to the operator',
      );
      return address;
    } catch (error) {
      if (args.stopped?.()) throw error;
      args.log.warn(
        { operator: args.operatorUrl, err: error instanceof Error ? error.message : String(error), retryMs },
        'cannot reach the operator to detect the advertise address: retrying',
      );
      await new Promise((resolve) => setTimeout(resolve, retryMs));
      retryMs = Math.min(5000, retryMs * 2);
    }
  }
}
