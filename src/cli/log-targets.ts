/**
 * What `berth logs` reads: the containers of a service (its replicas) or of a Job (its runs, every
 * attempt), picked from what the nodes report. Runs are picked by their labels (berth.job and
 * berth.namespace, as the node reports them), so any kind whose runs carry those labels (a
 * CronJob's runs) is read the same way.
 */
import type { ObservedJobRun, ObservedReplica, ObservedState } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import { DEFAULT_NAMESPACE } from '../manifests/defaults.js';

/** `[NAMESPACE/]SERVICE` or `[NAMESPACE/]job/NAME`. */
export interface LogSelector {
  kind: 'service' | 'job';
  namespace: string;
  name: string;
}

/** One container whose lines are printed. */
export interface LogTarget {
  node: string;
  /** The container name. */
  name: string;
  /** What leads each of its lines: `SERVICE.SLOT@NODE` or `job/NAME#ATTEMPT@NODE`. */
  prefix: string;
  running: boolean;
  /**
   * A Job run: followed once when first seen even when it has already ended (a retry may start and
   * end between two looks at the nodes), never again once its stream ended.
   */
  run: boolean;
}

export function parseLogSelector(text: string): LogSelector {
  const parts = text.split('/');
  const valid = parts.every((part) => part !== '');
  if (valid && parts.length === 1) return { kind: 'service', namespace: DEFAULT_NAMESPACE, name: text };
  if (valid && parts.length === 2 && parts[0] === 'job')
    return { kind: 'job', namespace: DEFAULT_NAMESPACE, name: parts[1]! };
  if (valid && parts.length === 2) return { kind: 'service', namespace: parts[0]!, name: parts[1]! };
  if (valid && parts.length === 3 && parts[1] === 'job')
    return { kind: 'job', namespace: parts[0]!, name: parts[2]! };
  throw new BerthError(
    'ERR_BAD_REQUEST',
    `"${text}" names no service nor Job: give SERVICE, NAMESPACE/SERVICE, job/NAME or NAMESPACE/job/NAME`,
  );
}

export function describeSelector(selector: LogSelector): string {
  const namespace = selector.namespace === DEFAULT_NAMESPACE ? '' : `${selector.namespace}/`;
  return `${namespace}${selector.kind === 'job' ? 'job/' : ''}${selector.name}`;
}

export const targetKey = (target: { node: string; name: string }) => `${target.node}/${target.name}`;

/** The selected containers on every node (or on `onlyNode`), runs in attempt order. */
export function selectLogTargets(
  observed: ObservedState,
  selector: LogSelector,
  onlyNode: string | null,
): LogTarget[] {
  const nodes = observed.nodes.filter((node) => onlyNode === null || node.name === onlyNode);
  const namespace = selector.namespace === DEFAULT_NAMESPACE ? '' : `${selector.namespace}/`;
  if (selector.kind === 'service') {
    return nodes
      .flatMap((node) => node.replicas)
      .filter((replica) => replica.namespace === selector.namespace && replica.service === selector.name)
      .map((replica: ObservedReplica) => ({
        node: replica.node,
        name: replica.name,
        prefix: `${namespace}${replica.service}.${replica.slot}@${replica.node}`,
        running: replica.state === 'running',
        run: false,
      }));
  }
  return (
    nodes
      .flatMap((node) => node.jobRuns ?? [])
      // A run not started yet has written nothing; -f would read it once, empty, and never again.
      .filter(
        (run) => run.namespace === selector.namespace && run.job === selector.name && run.state !== 'created',
      )
      .sort((a, b) => a.attempt - b.attempt)
      .map((run: ObservedJobRun) => ({
        node: run.node,
        name: run.name,
        prefix: `${namespace}job/${run.job}#${run.attempt}@${run.node}`,
        running: run.state === 'running',
        run: true,
      }))
  );
}
