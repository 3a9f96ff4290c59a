import { hostname } from 'node:os';
import type { NodeAgent } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import { parseListenAddress } from '../core/listen-address.js';
import { parseDuration } from '../manifests/units.js';
import type { Logger } from '../core/log.js';
import { currentJoinToken, loadOrCreateClusterIdentity, writeClusterEndpoint } from './cluster-identity.js';
import { createClusterServer, type AdminJobControl } from './cluster-server.js';
import { NodeRegistry } from './node-registry.js';
import { DEFAULT_CLUSTER_PORT } from './rpc-protocol.js';

export interface OperatorCluster {
  /** The nodes the reconcile drives: the local ones plus every joined node. */
  agents(): ReadonlyMap<string, NodeAgent>;
  /** The registry's listing and drain/activate, for the dashboard. */
  nodes: Pick<NodeRegistry, 'list' | 'setAvailability'>;
  /** Where agents join (what `berth token` prints). */
  endpoint: string;
  joinCommand: string;
  close(): Promise<void>;
}

/** 90 days, as Swarm's `--cert-expiry` default. */
export const DEFAULT_CERT_EXPIRY = '2160h';

export function joinCommandFor(endpoint: string, token: string): string {
  return `berth agent --join ${endpoint} --token ${token}`;
}

/**
 * The operator's side of the cluster: its identity (made on first start), the registry of
 * joined nodes, and the TLS endpoint agents join and connect to.
 */
export async function openOperatorCluster(args: {
  stateDir: string;
  listen: string;
  /** The URL agents should dial when it differs from the listen address (NAT, a DNS name). */
  advertise?: string;
  local: ReadonlyMap<string, NodeAgent>;
  log: Logger;
  onChange: (reason: string) => void;
  /** Lifetime of node certificates, a Go-style duration (`--cert-expiry`). */
  certExpiry?: string;
  /** `berth job run` through the admin API. */
  jobs?: AdminJobControl;
}): Promise<OperatorCluster> {
  const log = args.log.child({ component: 'cluster' });
  const certificateMs = parseDuration(args.certExpiry ?? DEFAULT_CERT_EXPIRY);
  if (certificateMs === null || certificateMs < 10_000) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `--cert-expiry wants a duration of at least 10s, like 2160h, got "${args.certExpiry}"`,
    );
  }
  const identity = await loadOrCreateClusterIdentity(args.stateDir, (role, reason) =>
    log.info({ role, reason }, `issued the ${role} certificate (valid as long as the CA)`),
  );
  const registry = new NodeRegistry({
    stateDir: args.stateDir,
    local: args.local,
    log,
    onChange: args.onChange,
    certificateMs,
  });
  await registry.load();
  const server = createClusterServer({
    identity,
    stateDir: args.stateDir,
    registry,
    log,
    ...(args.jobs ? { jobs: args.jobs } : {}),
  });
  let url: string;
  try {
    url = await server.listen(
      parseListenAddress(args.listen, {
        option: '--cluster-listen',
        defaultHost: '0.0.0.0',
        defaultPort: DEFAULT_CLUSTER_PORT,
      }),
    );
  } catch (error) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `cannot listen for agents on ${args.listen}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  // Listening on every address: agents are told the host name; --cluster-advertise overrides it.
  const endpoint = args.advertise ?? url.replace(/:\/\/(0\.0\.0\.0|\[::\]):/, `://${hostname()}:`);
  await writeClusterEndpoint(args.stateDir, endpoint);
  const token = await currentJoinToken(args.stateDir);
  log.info({ listen: url, endpoint, ca: identity.caFingerprint }, 'listening for agents');
  return {
    agents: () => registry.agents(),
    nodes: registry,
    endpoint,
    joinCommand: joinCommandFor(endpoint, token),
    async close() {
      await server.close();
      await registry.close();
    },
  };
}
