import { join } from 'node:path';
import { readFileIfExists } from '../core/atomic-file.js';
import { clusterDir, readClusterEndpoint, readClusterIdentity } from './cluster-identity.js';
import type { NodeListing } from './node-registry.js';
import { requestJson, requestStream } from './operator-request.js';
import { LOG_STREAM_IDLE_MS } from '../api/agent-calls.js';
import { readLogStream } from '../api/log-stream.js';
import { CLUSTER_PATHS } from './rpc-protocol.js';
import type { ObservedState, ReplicaLogLine, ReplicaLogOptions } from '../api/types.js';

/**
 * The local admin CLI's client of the running operator: the cluster endpoint with the admin
 * certificate from the state dir (whoever can read `<state-dir>/cluster/admin.key` administers
 * the cluster, as whoever can read the Docker socket administers Docker).
 */
export interface AdminClient {
  listNodes(): Promise<NodeListing[]>;
  setAvailability(node: string, availability: 'drain' | 'active'): Promise<void>;
  removeNode(node: string): Promise<void>;
  /** `berth node label`: the node's labels after the change. */
  setLabels(
    node: string,
    change: { set: Record<string, string>; remove: string[] },
  ): Promise<Record<string, string>>;
  observed(): Promise<ObservedState>;
  /** `berth job run`: a CronJob runs now, a Job again; what the operator started. */
  runJob(namespace: string, name: string): Promise<unknown>;
  /** A replica's lines on any node, relayed by the operator (`berth logs`). */
  logs(node: string, name: string, options: ReplicaLogOptions): AsyncIterable<ReplicaLogLine>;
}

/** The admin client when the state dir belongs to an operator that listens for agents, else null. */
export async function openAdminClientIfClustered(stateDir: string): Promise<AdminClient | null> {
  const endpoint = await readFileIfExists(join(clusterDir(stateDir), 'endpoint.json'));
  return endpoint === null ? null : openAdminClient(stateDir);
}

export async function openAdminClient(stateDir: string): Promise<AdminClient> {
  const identity = await readClusterIdentity(stateDir);
  const endpoint = await readClusterEndpoint(stateDir);
  const tls = {
    ca: identity.ca.certificatePem,
    cert: identity.admin.certificatePem,
    key: identity.admin.privateKeyPem,
  };
  const nodePath = (node: string) => `${CLUSTER_PATHS.nodes}/${encodeURIComponent(node)}`;
  return {
    async listNodes() {
      const body = (await requestJson(endpoint, tls, 'GET', CLUSTER_PATHS.nodes)) as { nodes: NodeListing[] };
      return body.nodes;
    },
    async setAvailability(node, availability) {
      await requestJson(
        endpoint,
        tls,
        'POST',
        `${nodePath(node)}/${availability === 'drain' ? 'drain' : 'activate'}`,
      );
    },
    async removeNode(node) {
      await requestJson(endpoint, tls, 'DELETE', nodePath(node));
    },
    async setLabels(node, change) {
      const body = (await requestJson(endpoint, tls, 'POST', `${nodePath(node)}/labels`, change)) as {
        labels: Record<string, string>;
      };
      return body.labels;
    },
    async observed() {
      return (await requestJson(endpoint, tls, 'GET', CLUSTER_PATHS.observed)) as ObservedState;
    },
    async runJob(namespace, name) {
      return requestJson(endpoint, tls, 'POST', CLUSTER_PATHS.jobRun, { namespace, name });
    },
    async *logs(node, name, options) {
      const body = await requestStream(
        endpoint,
        tls,
        CLUSTER_PATHS.logs,
        { node, name, options },
        LOG_STREAM_IDLE_MS,
      );
      try {
        yield* readLogStream(body, `logs of ${name} on node ${node}`);
      } finally {
        body.destroy();
      }
    },
  };
}
