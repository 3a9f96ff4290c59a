import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from '../core/log.js';
import { watchBranch } from '../source/ref-watch.js';
import type { OperatorMetrics } from './metrics.js';
import { observeCluster } from '../api/observe-cluster.js';
import { reconcile, type ReconcileDeps, type ReconcileResult } from './reconcile.js';

export interface OperatorOptions extends Omit<ReconcileDeps, 'signal'> {
  /** node-cron expression for the safety-net poll; null disables it. */
  schedule: string | null;
  /** A local repository whose refs are watched (chokidar); null for remotes. */
  watchRepo: string | null;
  metrics: OperatorMetrics;
}

export const DEFAULT_SCHEDULE = '* * * * *';

/**
 * The reconcile loop. Triggers (cron tick, ref change, webhook, API) only enqueue a reconcile;
 * the reconcile re-reads git and every agent, so triggers carry no payload. Never two
 * reconciles at once: a trigger during a reconcile runs one more right after it.
 */
export class Operator {
  private readonly options: OperatorOptions;
  private readonly log: Logger;
  private readonly shutdown = new AbortController();
  private loop: Promise<void> | null = null;
  private pending = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelayMs = 0;
  private task: ScheduledTask | null = null;
  private watcher: { close(): Promise<void> } | null = null;
  private waiters: ((result: ReconcileResult | null) => void)[] = [];
  lastResult: ReconcileResult | null = null;
  lastError: Error | null = null;

  constructor(options: OperatorOptions) {
    this.options = options;
    this.log = options.log;
  }

  async start(): Promise<void> {
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
    void this.trigger('start');
  }

  /** Enqueues a reconcile; resolves with its result (null if it threw). */
  trigger(reason: string): Promise<ReconcileResult | null> {
    if (this.shutdown.signal.aborted) return Promise.resolve(null);
    const done = new Promise<ReconcileResult | null>((resolve) => this.waiters.push(resolve));
    this.log.debug({ trigger: reason }, 'reconcile requested');
    this.pending = true;
    this.loop ??= this.runLoop().finally(() => {
      this.loop = null;
    });
    return done;
  }

  private async runLoop(): Promise<void> {
    while (this.pending && !this.shutdown.signal.aborted) {
      this.pending = false;
      const waiters = this.waiters;
      this.waiters = [];
      const result = await this.reconcileOnce();
      for (const resolve of waiters) resolve(result);
    }
  }

  private async reconcileOnce(): Promise<ReconcileResult | null> {
    const started = process.hrtime.bigint();
    let result: ReconcileResult | null = null;
    try {
      result = await reconcile({ ...this.options, signal: this.shutdown.signal });
      this.lastResult = result;
      this.lastError = null;
      this.retryDelayMs = 0;
    } catch (error) {
      this.lastError = error instanceof Error ? error : new Error(String(error));
      this.log.error({ err: error }, 'reconcile failed; retrying with back-off');
      this.scheduleRetry();
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const { metrics } = this.options;
    metrics.recordReconcile(result, seconds, result === null);
    try {
      const state = await this.options.store.read();
      metrics.recordRevisions(result?.headRevision ?? null, state.lastGood?.revision ?? null);
      metrics.recordReplicas(result?.plan ?? null, await observeCluster(this.options.agents(), this.log));
    } catch (error) {
      this.log.warn({ err: error }, 'could not refresh metrics');
    }
    return result;
  }

  /** Transient failures (git or an agent unreachable) retry at 1 s, 2 s, 4 s ... up to 60 s. */
  private scheduleRetry(): void {
    if (this.retryTimer || this.shutdown.signal.aborted) return;
    this.retryDelayMs = Math.min(60_000, this.retryDelayMs === 0 ? 1000 : this.retryDelayMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.trigger('retry');
    }, this.retryDelayMs);
  }

  /** Stops triggers, lets the running reconcile stop at its next step, and waits for it. */
  async stop(): Promise<void> {
    this.shutdown.abort();
    await this.task?.stop();
    await this.watcher?.close();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.loop;
    for (const resolve of this.waiters) resolve(null);
    this.waiters = [];
  }
}
