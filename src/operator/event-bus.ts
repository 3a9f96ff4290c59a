/**
 * The operator's event stream: what it did and saw, as it happens (reconciles, rollout steps,
 * nodes), for `berth events` and the dashboard. Events are numbered from 1 in the order published;
 * the last EVENT_RING_SIZE are kept, so a client that reconnects with the last id it saw gets
 * what it missed (when still held) and no event twice. Nothing is written to disk: the history
 * (`berth history`) is the durable record, this is the live one.
 */
export const EVENT_RING_SIZE = 1000;

export interface OperatorEvent {
  id: number;
  /** ISO 8601. */
  at: string;
  /** `reconcile-started`, `reconcile-finished`, a rollout step (`replica-healthy`, ...), `node-down`... */
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
