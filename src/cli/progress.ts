import type { RolloutEvent } from '../rollout/apply-plan.js';

/** One line per rollout event, for `berth apply` on a terminal or in a CI log. */
export function formatRolloutEvent(event: RolloutEvent): string | null {
  const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;
  switch (event.type) {
    case 'service-started':
      return `${event.service}: ${event.change}, ${event.batches} batch${event.batches === 1 ? '' : 'es'}`;
    case 'replica-starting':
      return `  ${event.service} slot ${event.slot}: starting ${event.name} on ${event.node}`;
    case 'replica-healthy':
      return `  ${event.service} slot ${event.slot}: healthy after ${seconds(event.ms)}`;
    case 'replica-failed':
      return `  ${event.service} slot ${event.slot}: FAILED: ${event.reason}`;
    case 'replica-removed':
      return `  ${event.service}: removed ${event.name} on ${event.node} (${event.reason})`;
    case 'batch-done':
      return `  ${event.service}: batch ${event.batch}/${event.batches} done`;
    case 'service-finished':
      return `${event.service}: ${event.outcome} in ${seconds(event.ms)}${event.reason ? `: ${event.reason}` : ''}`;
  }
}
