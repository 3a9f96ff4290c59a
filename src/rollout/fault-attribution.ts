/**
 * Whose fault a rollout's trouble is: the revision's own (its replica crashes, exits, fails its
 * health check or its monitor window, its image does not exist, its request is refused as
 * invalid), or the infrastructure's (a node down, unreachable or not connected, an agent
 * connection lost mid-call, an engine call that times out or fails with a server error, the
 * operator stopping). Only the revision's own faults count against `maxFailureRatio` and trigger
 * the failure action; Swarm and Kubernetes do not blame a commit for a lost node either, they
 * reschedule and carry on.
 */
import type { NodeAgent, ReplicaWaitResult } from '../api/types.js';
import { asBerthError, type BerthError, type ErrorCode } from '../core/errors.js';

export type FaultSource = 'revision' | 'infrastructure';

/**
 * By error code, closed over every code so a new one must be placed. A terminal code that is
 * about a node rather than the manifests (a refused agent credential, a container name taken on
 * the engine) is still the infrastructure's: a new commit would not fix it.
 */
const faultSources: Record<ErrorCode, FaultSource> = {
  ERR_IMAGE_NOT_FOUND: 'revision',
  ERR_BAD_REQUEST: 'revision',
  ERR_MANIFEST_INVALID: 'revision',
  ERR_NOT_SUPPORTED: 'revision',
  ERR_SECRET_UNREADABLE: 'revision',
  ERR_ROLLOUT_UNHEALTHY: 'revision',
  ERR_ROLLOUT_DEADLINE: 'revision',
  ERR_JOB_FAILED: 'revision',
  ERR_AGENT_UNREACHABLE: 'infrastructure',
  ERR_AGENT_UNAUTHORIZED: 'infrastructure',
  ERR_DOCKER_UNAVAILABLE: 'infrastructure',
  ERR_INTERNAL: 'infrastructure',
  // "Vanished right after it was started": something removed it, not the revision.
  ERR_CONTAINER_NOT_FOUND: 'infrastructure',
  ERR_STATE: 'infrastructure',
  ERR_STATE_WRITE: 'infrastructure',
  ERR_GIT_SOURCE: 'infrastructure',
  ERR_FORGE: 'infrastructure',
  ERR_GIT_REF_NOT_FOUND: 'infrastructure',
};

export function faultSourceOf(error: unknown): FaultSource {
  return faultSources[asBerthError(error).code];
}

/** A rollout step stopped by the infrastructure: which node (null: none in particular) and why. */
export class InfrastructureFault extends Error {
  readonly node: string | null;
  readonly code: ErrorCode;

  constructor(node: string | null, code: ErrorCode, message: string) {
    super(message);
    this.name = 'InfrastructureFault';
    this.node = node;
    this.code = code;
  }

  static of(node: string | null, error: BerthError): InfrastructureFault {
    return new InfrastructureFault(node, error.code, error.message);
  }
}

/**
 * Runs one call on `node`: an error of the infrastructure comes back as an InfrastructureFault
 * naming the node; the revision's own errors are rethrown as they are.
 */
export async function onNode<T>(node: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof InfrastructureFault) throw error;
    const e = asBerthError(error);
    if (faultSources[e.code] === 'infrastructure') throw InfrastructureFault.of(node, e);
    throw e;
  }
}

/** How long a replica seen dead is watched for its node going with it (an engine stopping). */
export const NODE_SETTLE_MS = 2000;
const SETTLE_POLL_MS = 250;

/**
 * A replica that did not become (or stay) healthy is the revision's failure only if its node is
 * still there to say so. Asks the node: when it does not answer, or the replica is gone from it
 * (a crash leaves an exited container; only something else removes one), the node is the cause.
 * A replica seen running (unhealthy, say) is judged at once; one seen dead is watched for
 * `settleMs`, as an engine that stops kills its containers before it stops answering.
 * Null when the revision is to blame, else the infrastructure's reason.
 */
export async function infrastructureCause(
  agent: NodeAgent,
  name: string,
  wait: ReplicaWaitResult,
  settleMs = NODE_SETTLE_MS,
): Promise<InfrastructureFault | null> {
  const deadline = Date.now() + settleMs;
  for (;;) {
    let replica;
    try {
      replica = (await agent.snapshot()).replicas.find((r) => r.name === name);
    } catch (error) {
      const e = asBerthError(error);
      const why = `replica ${name} ${wait.outcome} as node ${agent.name} stopped answering: ${e.message}`;
      return new InfrastructureFault(agent.name, e.code, why);
    }
    if (replica === undefined) {
      return new InfrastructureFault(
        agent.name,
        'ERR_CONTAINER_NOT_FOUND',
        `replica ${name} was removed from node ${agent.name} by something other than the rollout`,
      );
    }
    if (replica.state === 'running' || Date.now() >= deadline) return null;
    await new Promise((resolve) => setTimeout(resolve, SETTLE_POLL_MS));
  }
}
