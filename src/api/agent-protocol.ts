/**
 * The agent protocol. The operator and its agents are upgraded separately, and an agent older
 * than the operator drops the request fields it does not know: a manifest's
 * readOnlyRootFilesystem, capabilities or volumes would silently not apply. So every agent says
 * in its snapshot which berth it is and which protocol it speaks, and the operator places nothing
 * on an agent whose protocol is older than its own: that node counts as draining (its replicas
 * are moved off start-first, the old agent is only asked to remove) until the agent is upgraded.
 *
 * Bump AGENT_PROTOCOL whenever a request or a routing table gains a field that matters.
 */
import type { NodeSnapshot } from './types.js';

export const AGENT_PROTOCOL = 1;

/** Why an agent is too old for this operator; null when it is not. */
export function agentTooOld(snapshot: Pick<NodeSnapshot, 'agent'>): string | null {
  const protocol = snapshot.agent?.protocol ?? 0;
  if (protocol >= AGENT_PROTOCOL) return null;
  const which = snapshot.agent === undefined ? 'an earlier berth' : `berth ${snapshot.agent.version}`;
  return `its agent (${which}, agent protocol ${protocol}) is older than this operator (agent protocol ${AGENT_PROTOCOL}) and would drop fields of what it is asked; it takes no new replicas until it is upgraded`;
}

/** A version as a node may say it: what is not a plain version string is not repeated in logs and tables. */
const VERSION = /^[0-9A-Za-z.+-]{1,64}$/;

/**
 * A remote agent's snapshot as the operator acts on it: what it says of itself reduced to a plain
 * version and an integer protocol (a node is not trusted with what reaches logs and terminals),
 * and a too-old agent's node drained.
 */
export function asCompatible(reported: NodeSnapshot): NodeSnapshot {
  const said = reported.agent;
  const snapshot: NodeSnapshot =
    said === undefined
      ? reported
      : {
          ...reported,
          agent: {
            version:
              typeof said.version === 'string' && VERSION.test(said.version) ? said.version : 'unknown',
            protocol: Number.isSafeInteger(said.protocol) ? said.protocol : 0,
          },
        };
  const reason = agentTooOld(snapshot);
  if (reason === null || snapshot.status === 'down') return snapshot;
  return { ...snapshot, status: 'drain', incompatible: reason };
}
