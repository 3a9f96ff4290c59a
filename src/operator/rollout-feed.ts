import type { RolloutEvent } from '../rollout/apply-plan.js';
import type { ReconcileNotifier } from './operator.js';
import type { ReconcileResult, RolloutStart } from './reconcile-types.js';

/** A rollout step as the dashboard shows it: when it happened, in order. */
export type FeedEvent = RolloutEvent & { seq: number; at: string };

/** The newest rollout the operator started, as it goes and after it ended. */
export interface RolloutProgress {
  revision: string;
  kind: RolloutStart['kind'];
  message: string;
  startedAt: string;
  /** null while it runs; then the reconcile's outcome (succeeded, rolled back, failed, ...). */
  outcome: string | null;
  reason: string | null;
  finishedAt: string | null;
}

/** Events kept for the page: a rollout of many services still shows its latest steps. */
export const DEFAULT_FEED_EVENTS = 200;

/**
 * What the operator's rollouts did lately, kept in memory for the dashboard (the audit log on
 * disk has each service's outcome, not its steps). Bounded: the oldest events are dropped.
 */
export class RolloutFeed implements ReconcileNotifier {
  private readonly limit: number;
  private readonly now: () => Date;
  private events: FeedEvent[] = [];
  private seq = 0;
  current: RolloutProgress | null = null;

  constructor(options: { limit?: number; now?: () => Date } = {}) {
    this.limit = options.limit ?? DEFAULT_FEED_EVENTS;
    this.now = options.now ?? (() => new Date());
  }

  record(event: RolloutEvent): void {
    this.seq += 1;
    this.events.push({ ...event, seq: this.seq, at: this.now().toISOString() });
    if (this.events.length > this.limit) this.events = this.events.slice(-this.limit);
  }

  rolloutStarted(start: RolloutStart): void {
    this.current = {
      revision: start.revision,
      kind: start.kind,
      message: start.message,
      startedAt: this.now().toISOString(),
      outcome: null,
      reason: null,
      finishedAt: null,
    };
  }

  reconciled(result: ReconcileResult): void {
    // A reconcile that changed nothing leaves the last rollout on the page as it ended.
    if (this.current === null || this.current.outcome !== null) return;
    this.current = {
      ...this.current,
      outcome: result.outcome,
      reason: result.reason,
      finishedAt: this.now().toISOString(),
    };
  }

  /** The newest events, oldest first. */
  recent(count = this.limit): FeedEvent[] {
    return this.events.slice(-count);
  }
}

/** Tells every notifier; one that throws does not keep the others from hearing. */
export function notifyAll(...notifiers: (ReconcileNotifier | null)[]): ReconcileNotifier {
  const present = notifiers.filter((n): n is ReconcileNotifier => n !== null);
  const each = (tell: (n: ReconcileNotifier) => void): void => {
    for (const n of present) {
      try {
        tell(n);
      } catch {
        // A notifier is best effort (see ReconcileNotifier); the reconcile goes on.
      }
    }
  };
  return {
    rolloutStarted: (start) => each((n) => n.rolloutStarted(start)),
    reconciled: (result) => each((n) => n.reconciled(result)),
  };
}
