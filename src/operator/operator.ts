import cron, { type ScheduledTask } from 'node-cron';
import { asBerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { watchBranch } from '../source/ref-watch.js';
import { observeCluster } from '../api/observe-cluster.js';
import type { Condition } from './conditions.js';
import { CronScheduler, type JobRunStarted } from './cron-scheduler.js';
import type { EventBus } from './event-bus.js';
import type { OperatorMetrics } from './metrics.js';
import {
  decideNextAction,
  initialReconcileStatus,
  rolloutStarted,
  type NextAction,
  type ReconcileReport,
  type ReconcileStatus,
} from './next-action.js';
import { reconcile, type ReconcileDeps, type ReconcileResult } from './reconcile.js';
import type { RolloutStart } from './reconcile-types.js';

export interface OperatorOptions extends Omit<ReconcileDeps, 'signal' | 'onRollout'> {
  /** node-cron expression for the safety-net poll; null disables it. */
  schedule: string | null;
  /** A local repository whose refs are watched (chokidar); null for remotes. */
  watchRepo: string | null;
  metrics: OperatorMetrics;
  /** Where reconciles are announced as they start and end (`berth events`). */
  events?: EventBus;
  /** The clock of the conditions' transition times; the system clock by default. */
  now?: () => Date;
  /** Told of each rollout as it starts and of each reconcile's result (commit statuses); never awaited. */
  notifier?: ReconcileNotifier;
}

export interface ReconcileNotifier {
  rolloutStarted(start: RolloutStart): void;
  reconciled(result: ReconcileResult): void;
}

export const DEFAULT_SCHEDULE = '* * * * *';

/**
 * The reconcile loop. Triggers (cron tick, ref change, webhook, API) only enqueue a reconcile;
 * the reconcile re-reads git and every agent, so triggers carry no payload. Never two
 * reconciles at once: a trigger during a reconcile runs one more right after it. What happens
 * after a reconcile that did not converge is decided by its error's disposition (next-action.ts).
 */
export class Operator {
  private readonly options: OperatorOptions;
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly shutdown = new AbortController();
  private loop: Promise<void> | null = null;
  private looping = false;
  private pending = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private task: ScheduledTask | null = null;
  private watcher: { close(): Promise<void> } | null = null;
  private waiters: ((result: ReconcileResult | null) => void)[] = [];
  private status: ReconcileStatus;
  private conditionsRecorded = false;
  private readonly cronJobs: CronScheduler;
  lastResult: ReconcileResult | null = null;
  lastError: Error | null = null;

  constructor(options: OperatorOptions) {
    this.options = options;
    this.log = options.log;
    this.now = options.now ?? (() => new Date());
    this.status = initialReconcileStatus(this.now());
    this.cronJobs = new CronScheduler({
      agents: options.agents,
      store: options.store,
      log: options.log.child({ component: 'cronjobs' }),
      readSecret: options.readSecret,
      onJobRun: (outcome) => options.metrics.recordJobRun(outcome),
      triggerReconcile: (reason) => void this.trigger(reason),
    });
  }

  /** `berth job run`: a CronJob runs now, a Job runs again. */
  runJobNow(namespace: string, name: string): Promise<JobRunStarted> {
    return this.cronJobs.runNow(namespace, name);
  }

  /** Ready, Reconciling and Stalled, as of now. */
  get conditions(): readonly Condition[] {
    return this.status.conditions;
  }

  async start(): Promise<void> {
    await this.publish(this.status);
    if (this.options.schedule !== null) {
      this.task = cron.schedule(this.options.schedule, () => this.trigger('schedule'), { noOverlap: true });
    }
    if (this.options.watchRepo !== null) {
      this.watcher = await watchBranch({
        repo: this.options.watchRepo,
        branch: this.options.source.branch,
        log: this.log,
        onChange: () => this.trigger('watch'),
      });
    }
    this.cronJobs.start();
    void this.trigger('start');
  }

  /**
   * A reconcile asked for by what was observed (a replica lost): while a retry waits out its
   * back-off (a rollout interrupted by a node that is going down), the retry answers it; jumping
   * the back-off would only interrupt the same rollout again and again.
   */
  triggerObserved(reason: string): void {
    if (this.retryTimer !== null) {
      this.log.debug({ trigger: reason }, 'reconcile requested; a retry is already due');
      return;
    }
    void this.trigger(reason);
  }

  /** Enqueues a reconcile; resolves with its result (null if it threw). */
  trigger(reason: string): Promise<ReconcileResult | null> {
    if (this.shutdown.signal.aborted) return Promise.resolve(null);
    const done = new Promise<ReconcileResult | null>((resolve) => this.waiters.push(resolve));
    this.log.debug({ trigger: reason }, 'reconcile requested');
    this.pending = true;
    if (!this.looping) {
      this.looping = true;
      this.loop = this.runLoop();
    }
    return done;
  }

  private async runLoop(): Promise<void> {
    try {
      while (this.pending && !this.shutdown.signal.aborted) {
        this.pending = false;
        const waiters = this.waiters;
        this.waiters = [];
        const result = await this.reconcileOnce();
        for (const resolve of waiters) resolve(result);
      }
    } finally {
      // Cleared in the same step the loop ends: a trigger from a waiter just resolved (or any
      // trigger after the last check of `pending`) starts a new loop instead of being lost.
      this.looping = false;
    }
  }

  private async reconcileOnce(): Promise<ReconcileResult | null> {
    const started = process.hrtime.bigint();
    let result: ReconcileResult | null = null;
    let report: ReconcileReport;
    this.options.events?.publish('reconcile-started', {});
    try {
      result = await reconcile({
        ...this.options,
        signal: this.shutdown.signal,
        cronJobs: this.cronJobs,
        onJobRun: (outcome) => this.options.metrics.recordJobRun(outcome),
        onRollout: async (start) => {
          this.options.notifier?.rolloutStarted(start);
          await this.publish(rolloutStarted(this.status, start.message, this.now()));
        },
      });
      this.lastResult = result;
      this.lastError = null;
      this.options.notifier?.reconciled(result);
      report = reportOf(result);
    } catch (error) {
      const berthError = asBerthError(error);
      this.lastError = berthError;
      report = { kind: 'failed', error: berthError, running: null };
    }
    this.options.events?.publish('reconcile-finished', {
      outcome: result?.outcome ?? 'failed',
      reconcileId: result?.reconcileId ?? null,
      head: result?.headRevision ?? null,
      target: result?.targetRevision ?? null,
      reason: report.kind === 'failed' ? report.error.message : (result?.reason ?? null),
    });
    const { status, next } = decideNextAction(this.status, report, this.now());
    const changed = await this.publish(status);
    this.follow(next, report, changed);
    await this.recordMetrics(result, Number(process.hrtime.bigint() - started) / 1e9);
    return result;
  }

  /** Makes `status` current: in memory, in the state dir (for `berth status`) and in the metrics. */
  private async publish(status: ReconcileStatus): Promise<boolean> {
    const changed = JSON.stringify(status.conditions) !== JSON.stringify(this.status.conditions);
    this.status = status;
    this.options.metrics.recordConditions(status.conditions);
    // An idle operator reconciles every minute: the file is written only when something changed.
    if (!changed && this.conditionsRecorded) return false;
    try {
      await this.options.store.writeConditions(status.conditions, this.now());
      this.conditionsRecorded = true;
    } catch (error) {
      this.log.warn({ err: error }, 'could not record the conditions in the state dir');
    }
    return true;
  }

  /** Schedules what the decision says; a pending retry is replaced, a trigger never waits for it. */
  private follow(next: NextAction, report: ReconcileReport, changed: boolean): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (report.kind === 'failed') {
      const { code, disposition } = report.error;
      const what = next.kind === 'retry' ? `retrying in ${next.afterMs} ms` : 'waiting for a new commit';
      // A stalled operator still polls: say it once, not every minute.
      const level = changed || next.kind === 'retry' ? 'error' : 'debug';
      this.log[level]({ code, disposition, err: report.error }, `reconcile did not converge; ${what}`);
    }
    if (next.kind !== 'retry' || this.shutdown.signal.aborted) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.trigger('retry');
    }, next.afterMs);
  }

  private async recordMetrics(result: ReconcileResult | null, seconds: number): Promise<void> {
    const { metrics } = this.options;
    metrics.recordReconcile(result, seconds, result === null);
    try {
      const state = await this.options.store.read();
      metrics.recordRevisions(result?.headRevision ?? null, state.lastGood?.revision ?? null);
      metrics.recordJobSuccesses(state.jobs ?? {});
      metrics.recordReplicas(result?.plan ?? null, await observeCluster(this.options.agents(), this.log));
    } catch (error) {
      this.log.warn({ err: error }, 'could not refresh metrics');
    }
  }

  /** Stops triggers, lets the running reconcile stop at its next step, and waits for it. */
  async stop(): Promise<void> {
    this.shutdown.abort();
    await this.task?.stop();
    await this.watcher?.close();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.cronJobs.stop();
    await this.loop;
    for (const resolve of this.waiters) resolve(null);
    this.waiters = [];
  }
}

function reportOf(result: ReconcileResult): ReconcileReport {
  if (result.error === null)
    return { kind: 'converged', revision: result.targetRevision ?? result.headRevision };
  return { kind: 'failed', error: result.error, running: result.targetRevision };
}
