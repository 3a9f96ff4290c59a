/**
 * Commit statuses on the git host for each revision the operator deploys: `pending` when its
 * rollout starts, `success` once the cluster runs it, `failure` with the reason when it failed,
 * was rolled back or was refused as invalid. Told by the operator (ReconcileNotifier) and never in
 * its way: calls only queue; one worker posts, newest status per commit first-come, and a git host
 * that is down or answers 5xx is retried with back-off (1 s doubling to 5 min). A refused token
 * (401/403) is said once, clearly; nothing else about the token is ever said.
 */
import type { Logger } from '../core/log.js';
import { postCommitStatus, type CommitState, type CommitStatus } from '../forge/commit-status.js';
import { ForgeError } from '../forge/forge-request.js';
import type { ForgeTarget } from '../forge/forge-target.js';
import { shortRevision } from '../source/revision.js';
import type { ReconcileNotifier } from './operator.js';
import type { ReconcileResult, RolloutStart } from './reconcile-types.js';

export interface CommitStatusReporterOptions {
  target: ForgeTarget;
  /** `berth/<cluster name>`. */
  context: string;
  targetUrl?: string;
  log: Logger;
  /** Back-off of a transient failure: first wait, and the cap. */
  retry?: { firstMs: number; maxMs: number };
  /** Stand-in for tests of the queue alone. */
  post?: (target: ForgeTarget, sha: string, status: CommitStatus) => Promise<void>;
}

/** Commits whose last status is remembered, so an idle operator's minutely reconcile posts nothing. */
const REMEMBERED = 1000;

export class CommitStatusReporter implements ReconcileNotifier {
  private readonly options: CommitStatusReporterOptions;
  private readonly log: Logger;
  /** What each commit was last given (or is about to be), by commit id, oldest first. */
  private readonly sent = new Map<string, string>();
  /** Statuses waiting to be posted, by commit: a newer one replaces a waiting older one. */
  private readonly queue = new Map<string, CommitStatus>();
  private working: Promise<void> | null = null;
  private running = false;
  private wake: (() => void) | null = null;
  private closed = false;
  private saidUnauthorized = false;

  constructor(options: CommitStatusReporterOptions) {
    this.options = options;
    this.log = options.log.child({ component: 'commit-status' });
  }

  rolloutStarted(start: RolloutStart): void {
    // A rollback returns to a revision that already has its success; its failed head gets its failure.
    if (start.kind === 'rollback') return;
    this.report(start.revision, 'pending', `rolling out to ${this.options.context.replace(/^berth\//, '')}`);
  }

  reconciled(result: ReconcileResult): void {
    const { error } = result;
    if (error === null) {
      if (result.targetRevision !== null)
        this.report(result.targetRevision, 'success', 'deployed: the cluster runs this revision');
      return;
    }
    // A node lost, a git host down, the operator stopping: not the revision's fault. It stays
    // pending and the operator goes on.
    if (result.outcome === 'interrupted' || error.disposition !== 'terminal') return;
    const what =
      result.outcome === 'rolled back'
        ? 'rolled back'
        : error.code === 'ERR_MANIFEST_INVALID'
          ? 'invalid'
          : 'failed';
    this.report(result.headRevision, 'failure', `${what}: ${error.message}`);
  }

  /** Stops posting; waits for a post in flight (each has its own time limit). */
  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    await this.working;
  }

  private report(sha: string, state: CommitState, description: string): void {
    if (this.closed || !/^[0-9a-f]{40}$/.test(sha)) return;
    const key = `${state}\n${description}`;
    const last = this.sent.get(sha);
    if (last === key) return;
    // A failed commit keeps the failure it was first given: the reconciles after it say the same
    // thing in other words ("failed earlier: ..."), which is no news for the pull request.
    if (state === 'failure' && last?.startsWith('failure\n')) return;
    this.sent.delete(sha);
    this.sent.set(sha, key);
    if (this.sent.size > REMEMBERED) this.sent.delete(this.sent.keys().next().value!);
    this.queue.delete(sha);
    this.queue.set(sha, {
      state,
      context: this.options.context,
      description,
      ...(this.options.targetUrl === undefined ? {} : { targetUrl: this.options.targetUrl }),
    });
    // `running` is cleared in the same step the worker sees an empty queue, so a status queued
    // after that step always finds no worker and starts one.
    if (this.running) return;
    this.running = true;
    this.working = this.work().catch((error: unknown) => {
      this.running = false;
      this.log.error({ err: error }, 'commit status worker failed');
    });
  }

  private async work(): Promise<void> {
    const retry = this.options.retry ?? { firstMs: 1000, maxMs: 300_000 };
    let waitMs = retry.firstMs;
    while (!this.closed && this.queue.size > 0) {
      const [sha, status] = this.queue.entries().next().value!;
      this.queue.delete(sha);
      try {
        await (this.options.post ?? postCommitStatus)(this.options.target, sha, status);
        this.log.debug({ revision: shortRevision(sha), state: status.state }, 'commit status posted');
        waitMs = retry.firstMs;
      } catch (error) {
        if (!(error instanceof ForgeError) || !error.transient) {
          this.refused(sha, error);
          continue;
        }
        // Back in the queue unless a newer status for this commit came meanwhile.
        if (!this.queue.has(sha)) this.queue.set(sha, status);
        this.log.warn(
          { revision: shortRevision(sha), retryInMs: waitMs, err: error },
          'could not post a commit status; will retry',
        );
        await this.sleep(waitMs);
        waitMs = Math.min(waitMs * 2, retry.maxMs);
      }
    }
    // In the same step as the last look at the queue (no await in between): see report().
    this.running = false;
  }

  private refused(sha: string, error: unknown): void {
    const unauthorized = error instanceof ForgeError && error.unauthorized;
    if (unauthorized && this.saidUnauthorized) return;
    this.saidUnauthorized ||= unauthorized;
    this.log.error(
      { revision: shortRevision(sha), err: error },
      unauthorized
        ? 'the git host refuses the token for commit statuses (said once); fix BERTH_GIT_API_TOKEN or --git-api-token-file and restart'
        : 'the git host refused a commit status; it is not retried',
    );
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
