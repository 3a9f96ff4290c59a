/**
 * The operator's event stream: what it did and saw, as it happens (reconciles, rollout steps,
 * nodes), for `berth events` and the dashboard. Events are numbered from 1 in the order published;
 * the last EVENT_RING_SIZE are kept, so a client that reconnects with the last id it saw gets
 * what it missed (when still held) and no event twice. Nothing is written to disk: the history
 * (`berth history`) is the durable record, this is the live one.
 */
import type { ReplicaHealth } from '../api/types.js';

export const EVENT_RING_SIZE = 1000;

/**
 * Every event type, in one place: the list grows, a type never changes meaning nor loses a field
 * (the dashboard and `berth events --format json` readers rely on them). Fields by type:
 *
 * - `reconcile-started` {}; `reconcile-finished` {outcome, reconcileId, head, target, reason}
 *   (operator.ts)
 * - rollout steps, RolloutEvent in rollout/apply-plan.ts: `service-started`, `replica-starting`,
 *   `replica-healthy`, `replica-failed`, `replica-removed`, `batch-done`, `service-finished`
 * - nodes (the node registry): `node-up`, `node-down`, `node-drain`, `node-active`,
 *   `node-labels`, `node-removed` {node}; `node-change` {reason}
 * - from observations (observation-events.ts), once per change: `replica-health-changed`
 *   (ReplicaHealthChangedData), `job-run-started`, `job-run-succeeded`, `job-run-failed`
 *   (JobRunEventData)
 */
export const OPERATOR_EVENT_TYPES = [
  'reconcile-started',
  'reconcile-finished',
  'service-started',
  'replica-starting',
  'replica-healthy',
  'replica-failed',
  'replica-removed',
  'batch-done',
  'service-finished',
  'node-up',
  'node-down',
  'node-drain',
  'node-active',
  'node-labels',
  'node-removed',
  'node-change',
  'replica-health-changed',
  'job-run-started',
  'job-run-succeeded',
  'job-run-failed',
] as const;

export type OperatorEventType = (typeof OPERATOR_EVENT_TYPES)[number];

/** `replica-health-changed`: to or from `unhealthy` (the health check's verdict, as the node reports it). */
export interface ReplicaHealthChangedData {
  namespace: string;
  service: string;
  /** The container name. */
  replica: string;
  slot: string;
  node: string;
  /** null: the replica was not seen before (an operator that started meanwhile). */
  from: ReplicaHealth | null;
  to: ReplicaHealth;
  /** Why the last probe failed (the node's words); null when healthy. */
  detail: string | null;
}

/** `job-run-started`, `-succeeded`, `-failed`: one run (container) of a Job, any attempt. */
export interface JobRunEventData {
  namespace: string;
  job: string;
  /** The run's container name. */
  run: string;
  /** 1 for the first run of a spec, 2 for its first retry... */
  attempt: number;
  node: string;
  revision: string;
  /** null while it runs. */
  exitCode: number | null;
  /** The last lines of a failed run's output; null otherwise. */
  output: string | null;
}

export interface OperatorEvent {
  id: number;
  /** ISO 8601. */
  at: string;
  /** One of OPERATOR_EVENT_TYPES. */
  type: string;
  /** The event's own fields (service, node, outcome, reason...). */
  data: Record<string, unknown>;
}

export class EventBus {
  private readonly ring: OperatorEvent[] = [];
  private nextId = 1;
  private readonly listeners = new Set<(event: OperatorEvent) => void>();

  constructor(
    private readonly capacity = EVENT_RING_SIZE,
    private readonly now: () => Date = () => new Date(),
  ) {}

  publish(type: string, data: Record<string, unknown> = {}): OperatorEvent {
    const event: OperatorEvent = { id: this.nextId++, at: this.now().toISOString(), type, data };
    this.ring.push(event);
    if (this.ring.length > this.capacity) this.ring.shift();
    for (const listener of this.listeners) listener(event);
    return event;
  }

  /** The held events after `id` (0: every held one), oldest first. */
  since(id: number): OperatorEvent[] {
    return this.ring.filter((event) => event.id > id);
  }

  /** The id of the newest event, 0 before any. */
  get lastId(): number {
    return this.nextId - 1;
  }

  /** Calls `listener` with every event from now on; returns the unsubscribe. */
  subscribe(listener: (event: OperatorEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
