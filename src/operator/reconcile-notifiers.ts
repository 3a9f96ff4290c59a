import type { EventBus } from './event-bus.js';
import type { ReconcileNotifier } from './operator.js';

/**
 * Rollouts as they start, on the operator's event stream (`rollout-started`): with the rollout
 * steps and `reconcile-finished` the operator publishes itself, the dashboard follows a rollout
 * from the stream alone.
 */
export function eventBusNotifier(bus: Pick<EventBus, 'publish'>): ReconcileNotifier {
  return {
    rolloutStarted: (start) => {
      bus.publish('rollout-started', { revision: start.revision, kind: start.kind, message: start.message });
    },
    reconciled: () => undefined,
  };
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
