/**
 * The containers of a service's next batch, created ahead while the current batch is checked, so
 * that the next batch only has to start them: what a rollout keeps of them. A start takes its
 * container (taken); whatever no start took when the service's rollout ends is removed by the
 * rollout, and, should the operator die first, by the next plan (state `created`: never-started).
 */
import type { ReplicaStep } from '../plan/types.js';

type StartStep = Extract<ReplicaStep, { action: 'create' | 'replace' }>;

export interface CreatedAhead {
  /** Creates ahead in the background; a failure only means the start will create it itself. */
  create(step: StartStep, prepare: () => Promise<void>): void;
  /** A start was sent for this replica: its container, if created ahead, is its own now. */
  taken(name: string): void;
  /** How long the creation ahead of this replica took; 0 when it was not created ahead. */
  msOf(name: string): number;
  /** Once every creation in flight has ended: the ones created ahead that no start took. */
  untaken(): Promise<{ name: string; node: string }[]>;
}

export function createdAhead(): CreatedAhead {
  const inFlight: Promise<void>[] = [];
  const created = new Map<string, { node: string; ms: number }>();
  const taken = new Set<string>();
  return {
    create(step, prepare) {
      const begin = Date.now();
      inFlight.push(
        prepare().then(
          () => void created.set(step.name, { node: step.node, ms: Date.now() - begin }),
          () => undefined,
        ),
      );
    },
    taken: (name) => void taken.add(name),
    msOf: (name) => created.get(name)?.ms ?? 0,
    async untaken() {
      await Promise.all(inFlight);
      return [...created].filter(([name]) => !taken.has(name)).map(([name, { node }]) => ({ name, node }));
    },
  };
}
