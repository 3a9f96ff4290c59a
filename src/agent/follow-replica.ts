/**
 * Follows one replica until a verdict (replica-verdict.ts), asking again on every change (docker
 * event, health change), never by polling, and once more when time is up.
 */
import type { ReplicaWaitResult } from '../api/types.js';
import type { Logger } from '../core/log.js';
import type { HealthProber } from './health-prober.js';
import { healthcheckFromLabels } from './health-prober.js';
import type { NodeContainers } from './node-containers.js';
import { judgeReplica, type ReplicaFacts, type WaitTerms } from './replica-verdict.js';
import type { RunHistory } from './run-history.js';
import type { RuntimeContainer } from './runtime.js';

export interface FollowContext {
  containers: NodeContainers;
  history: RunHistory;
  prober: HealthProber;
  /** Calls `listener` with a container name, or null when anything may have changed. */
  onChange(listener: (name: string | null) => void): () => void;
  /** Aborted when the agent closes: every wait ends at once. */
  closed: AbortSignal;
  log: Logger;
}

export async function followReplica(
  context: FollowContext,
  terms: Omit<WaitTerms, 'nodeName'>,
): Promise<ReplicaWaitResult> {
  const { containers, history, prober } = context;
  const { name } = terms;
  const waitTerms: WaitTerms = { ...terms, nodeName: containers.nodeName };
  const start = await containers.observe(name);
  if (start === null) {
    return {
      outcome: 'missing',
      replica: null,
      reason: `no container ${name} on node ${containers.nodeName}`,
    };
  }
  history.noteSeen(start);
  const deathsAtStart = history.deathCount(start.id);

  const factsOf = (container: RuntimeContainer | null): ReplicaFacts => {
    if (container === null) {
      return { container, restarted: false, diedSinceStart: false, lastExitCode: null, probe: null };
    }
    const restarted = history.restartedSinceSeen(container);
    const diedSinceStart = container.id === start.id && history.deathCount(container.id) > deathsAtStart;
    const probe = prober.status(name);
    // A running replica with a check nobody probes yet (seen first here): probe it now.
    const unprobed = probe === null && healthcheckFromLabels(container.labels) !== null;
    if (unprobed && container.state === 'running' && !restarted && !diedSinceStart)
      void prober.track(container);
    return { container, restarted, diedSinceStart, lastExitCode: history.lastExitCode(container.id), probe };
  };
  const judge = async (final: boolean) =>
    judgeReplica(waitTerms, factsOf(await containers.observe(name)), final);

  const immediate = judgeReplica(waitTerms, factsOf(start), false);
  if (immediate !== null) return immediate;
  return untilVerdict(context, waitTerms, judge);
}

/** Re-judges on every change of the replica until a verdict, or judges a last time when time is up. */
function untilVerdict(
  context: FollowContext,
  terms: WaitTerms,
  judge: (final: boolean) => Promise<ReplicaWaitResult | null>,
): Promise<ReplicaWaitResult> {
  const { name, limitMs } = terms;
  const log = context.log.child({ container: name });
  return new Promise<ReplicaWaitResult>((resolve) => {
    let done = false;
    let evaluating = false;
    let again = false;

    const finish = (result: ReplicaWaitResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unsubscribe();
      context.closed.removeEventListener('abort', onClose);
      resolve(result);
    };

    // One judgement at a time; a change during one asks for another right after it.
    const evaluate = async () => {
      if (done) return;
      if (evaluating) {
        again = true;
        return;
      }
      evaluating = true;
      try {
        do {
          again = false;
          const result = await judge(false);
          if (result !== null) finish(result);
        } while (again && !done);
      } catch (error) {
        log.warn({ err: error }, 'could not inspect a replica while following it');
      } finally {
        evaluating = false;
      }
    };

    const onClose = () =>
      finish({ outcome: 'timeout', replica: null, reason: `agent for node ${terms.nodeName} closed` });
    const timer = setTimeout(() => {
      void judge(true)
        .catch((error: unknown) => {
          log.warn({ err: error }, 'could not inspect a replica at the end of a wait');
          return null;
        })
        .then((result) =>
          finish(result ?? { outcome: 'timeout', replica: null, reason: `no verdict within ${limitMs} ms` }),
        );
    }, limitMs);
    const unsubscribe = context.onChange((changed) => {
      if (changed === name || changed === null) void evaluate();
    });
    context.closed.addEventListener('abort', onClose);
    if (context.closed.aborted) onClose();
    else void evaluate();
  });
}
