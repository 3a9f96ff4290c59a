import { hostname } from 'node:os';
import type { Command } from 'commander';
import type { NodeAgent } from '../api/types.js';
import { BerthError } from '../errors.js';
import { parseDuration } from '../manifests/units.js';
import type { Logger } from '../log.js';
import { currentJoinToken, loadOrCreateClusterIdentity, writeClusterEndpoint } from './cluster-identity.js';
import { createClusterServer } from './cluster-server.js';
import { NodeRegistry } from './node-registry.js';
import { DEFAULT_CLUSTER_PORT } from './rpc-protocol.js';

export interface OperatorCluster {
  /** The nodes the reconcile drives: the local ones plus every joined node. */
  agents(): ReadonlyMap<string, NodeAgent>;
  /** Where agents join (what `berth token` prints). */
  endpoint: string;
  joinCommand: string;
  close(): Promise<void>;
}

/** `HOST:PORT`, `[IPv6]:PORT`, `:PORT` or `HOST` (port 7946). */
export function parseClusterListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*))(?::(\d{1,5}))?$/.exec(value);
  const port = match?.[3] === undefined ? DEFAULT_CLUSTER_PORT : Number(match[3]);
  if (match === null || port > 65535) {
    throw new BerthError('ERR_BAD_REQUEST', `--cluster-listen wants HOST:PORT, got "${value}"`);
  }
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

/** The `berth run` options of the cluster endpoint. */
export function addOperatorClusterOptions(command: Command): Command {
  return command
    .option(
      '--cluster-listen <addr>',
      `listen for agents (join and their mutual-TLS connections) on HOST:PORT (port default ${DEFAULT_CLUSTER_PORT})`,
    )
    .option(
      '--cluster-advertise <url>',
      'the URL agents dial, when it differs from --cluster-listen (NAT, DNS name)',
    )
    .option(
      '--cert-expiry <duration>',
      'lifetime of node certificates (agents renew theirs when a third is left)',
      DEFAULT_CERT_EXPIRY,
    )
    .option(
      '--no-local-node',
      'do not run replicas on this host (a control-plane-only operator; needs --cluster-listen)',
    );
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
}): Promise<OperatorCluster> {
  const log = args.log.child({ component: 'cluster' });
  const certificateMs = parseDuration(args.certExpiry ?? DEFAULT_CERT_EXPIRY);
  if (certificateMs === null || certificateMs < 10_000) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `--cert-expiry wants a duration of at least 10s, like 2160h, got "${args.certExpiry}"`,
    );
  }
  const identity = await loadOrCreateClusterIdentity(args.stateDir);
  const registry = new NodeRegistry({
    stateDir: args.stateDir,
    local: args.local,
    log,
    onChange: args.onChange,
    certificateMs,
  });
  await registry.load();
  const server = createClusterServer({ identity, stateDir: args.stateDir, registry, log });
  let url: string;
  try {
    url = await server.listen(parseClusterListen(args.listen));
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
    endpoint,
    joinCommand: joinCommandFor(endpoint, token),
    async close() {
      await server.close();
      await registry.close();
    },
  };
}
