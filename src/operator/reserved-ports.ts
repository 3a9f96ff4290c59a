/**
 * The ports this operator and its agents are configured to listen on, which no Service may
 * publish: the mesh serves a published port on every node, so it would collide with berth's own
 * listener there. berth's default ports are refused with the manifests (cross-reference.ts); these
 * are the ones only `berth run` knows, from its flags, so they refuse a revision at preflight.
 */
import type { BerthPort } from '../core/berth-ports.js';
import type { DesiredState } from '../manifests/types.js';
import type { UnsupportedFeature } from './capabilities.js';

export function findReservedPortConflicts(
  desired: DesiredState,
  reserved: readonly BerthPort[],
): UnsupportedFeature[] {
  const found: UnsupportedFeature[] = [];
  for (const service of desired.services) {
    service.ports.forEach((port, index) => {
      const taken = reserved.find((berthPort) => berthPort.port === port.published);
      if (taken === undefined) return;
      found.push({
        namespace: service.namespace,
        service: service.name,
        path: ['spec', 'ports', index, 'published'],
        message: `port ${taken.port} is ${taken.use}; a Service cannot publish the ports berth listens on`,
      });
    });
  }
  return found;
}

/** What `berth run` listens on, from its flags; port 0 (any free port) reserves nothing. */
export function configuredBerthPorts(flags: {
  listen: { port: number } | null;
  clusterListen: { port: number } | null;
  agentUrls: readonly string[];
}): BerthPort[] {
  const ports: BerthPort[] = [];
  if (flags.listen !== null && flags.listen.port !== 0)
    ports.push({ port: flags.listen.port, use: "this operator's API port (berth run --listen)" });
  if (flags.clusterListen !== null && flags.clusterListen.port !== 0) {
    ports.push({
      port: flags.clusterListen.port,
      use: "this operator's cluster port (berth run --cluster-listen)",
    });
  }
  for (const url of flags.agentUrls) {
    const port = agentUrlPort(url);
    if (port !== null) ports.push({ port, use: `the API port of the agent at ${url} (berth run --agent)` });
  }
  return ports;
}

function agentUrlPort(url: string): number | null {
  try {
    const parsed = new URL(url);
    if (parsed.port !== '') return Number(parsed.port);
    return parsed.protocol === 'https:' ? 443 : parsed.protocol === 'http:' ? 80 : null;
  } catch {
    return null;
  }
}
