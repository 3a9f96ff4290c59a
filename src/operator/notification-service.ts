/**
 * Notifications declared in git: each Notifier of the revision the operator last loaded is told of
 * the events it wants (docs/notifications.md). Told by the operator (ReconcileNotifier) and never in
 * its way: calls only queue; one worker posts, and a receiver that is down, slow or answers
 * 429/5xx is retried with back-off a bounded number of times. The queue and the memory of what was
 * sent are bounded. A Notifier's URL is decrypted from its Secret for each post and never kept,
 * logged or put in an error.
 */
import type { Logger } from '../core/log.js';
import type { DesiredState, NotifierEvent, NotifierSpec, SecretSpec } from '../manifests/types.js';
import type { Notification } from '../notify/notification.js';
import { buildPayload } from '../notify/payloads.js';
import { DeliveryError, parseNotifierUrl, postNotification } from '../notify/post-notification.js';
import type { SecretReader } from '../secrets/secret-reader.js';
import { shortRevision } from '../source/revision.js';
import type { ReconcileNotifier } from './operator.js';
import type { ReconcileResult } from './reconcile-types.js';

export interface NotificationServiceOptions {
  readSecret: SecretReader | null;
  log: Logger;
  /** `berth run --cluster-name`, in every notification. */
  cluster?: string;
  /** Milliseconds since the epoch; the system clock by default. */
  now?: () => number;
  /** Stand-in for tests of the queue alone. */
  post?: (url: URL, body: unknown) => Promise<void>;
  retry?: RetryPolicy;
  /** Deliveries waiting at most; past it the oldest is dropped. */
  maxQueue?: number;
}

export interface RetryPolicy {
  firstMs: number;
  maxMs: number;
  /** Posts of one delivery at most, the first included. */
  attempts: number;
}

/** 1 s doubling to 1 min, 8 posts: about 2 min of a receiver down before a notification is given up. */
export const DEFAULT_RETRY: RetryPolicy = { firstMs: 1000, maxMs: 60_000, attempts: 8 };
const DEFAULT_MAX_QUEUE = 200;
/** The same happening (a node down, a job failing) is not said again within this. */
export const REPEAT_WINDOW_MS = 5 * 60_000;
/** Subjects remembered as said; the oldest is forgotten past this. */
const REMEMBERED = 2000;
/** Events that can happen again to the same subject; the others are a revision's verdict, said once. */
const RECURRING: ReadonlySet<NotifierEvent> = new Set(['node-down', 'job-failed']);

interface InEffect {
  notifiers: readonly NotifierSpec[];
  secrets: readonly SecretSpec[];
}

interface Delivery {
  notifier: NotifierSpec;
  /** The Secret of its URL, as of the revision that declared the Notifier. */
  secret: SecretSpec | undefined;
  notification: Notification;
  attempt: number;
  dueAt: number;
}

export class NotificationService implements ReconcileNotifier {
  private readonly options: NotificationServiceOptions;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly retry: RetryPolicy;
  private inEffect: InEffect = { notifiers: [], secrets: [] };
  /** When each (Notifier, event, subject) was last said, oldest first. */
  private readonly said = new Map<string, number>();
  private queue: Delivery[] = [];
  private working: Promise<void> | null = null;
  private running = false;
  private wake: (() => void) | null = null;
  private closed = false;
  /** Notifiers whose URL could not be had, said once each until their Secret changes. */
  private readonly unusable = new Set<string>();

  constructor(options: NotificationServiceOptions) {
    this.options = options;
    this.log = options.log.child({ component: 'notifications' });
    this.now = options.now ?? Date.now;
    this.retry = options.retry ?? DEFAULT_RETRY;
  }

  /** The Notifiers in effect: those of the revision last loaded. */
  get notifiers(): readonly NotifierSpec[] {
    return this.inEffect.notifiers;
  }

  rolloutStarted(): void {
    // No event of its own: a rollout is told when it ends.
  }

  reconciled(result: ReconcileResult): void {
    // The Notifiers of what this reconcile loaded: the head, or the last good revision when the head
    // was refused; a reconcile that loaded nothing keeps the ones before.
    if (result.desired !== undefined) this.use(result.desired);
    const notification = notificationOf(result);
    if (notification !== null) this.notify({ ...notification, ...this.stamp() });
  }

  /** A node stopped answering (node-registry's down timer). */
  nodeDown(node: string, revision: string): void {
    this.notify({ event: 'node-down', revision, node, ...this.stamp() });
  }

  /** A Job run failed; for the jobs controller to call. */
  jobFailed(job: { namespace: string; name: string; revision: string; reason: string }): void {
    const { namespace, name, revision, reason } = job;
    this.notify({ event: 'job-failed', revision, namespace, service: name, reason, ...this.stamp() });
  }

  /** Stops posting; waits for a post in flight (each has its own time limit). */
  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    await this.working;
  }

  private use(desired: DesiredState): void {
    const notifiers = desired.notifiers ?? [];
    const secrets = desired.secrets.filter((s) =>
      notifiers.some((n) => n.namespace === s.namespace && n.urlFrom.secret === s.name),
    );
    this.inEffect = { notifiers, secrets };
    this.unusable.clear();
  }

  private stamp(): { at: string; cluster?: string } {
    const at = new Date(this.now()).toISOString();
    return this.options.cluster === undefined ? { at } : { at, cluster: this.options.cluster };
  }

  private notify(notification: Notification): void {
    if (this.closed) return;
    for (const notifier of this.inEffect.notifiers) {
      if (!notifier.events.includes(notification.event)) continue;
      // A Job belongs to its namespace: its team's Notifiers and the cluster-wide ones of `default` hear of it.
      if (
        notification.event === 'job-failed' &&
        notifier.namespace !== 'default' &&
        notifier.namespace !== notification.namespace
      )
        continue;
      if (!this.firstSaying(notifier, notification)) continue;
      const secret = this.inEffect.secrets.find(
        (s) => s.namespace === notifier.namespace && s.name === notifier.urlFrom.secret,
      );
      this.enqueue({ notifier, secret, notification, attempt: 0, dueAt: this.now() });
    }
  }

  /** False when this was said to this Notifier already (see docs/notifications.md, "Once"). */
  private firstSaying(notifier: NotifierSpec, n: Notification): boolean {
    const subject =
      n.event === 'node-down'
        ? `node ${n.node ?? ''}`
        : n.event === 'job-failed'
          ? `job ${n.namespace ?? ''}/${n.service ?? ''} ${n.revision}`
          : // One verdict of each kind per revision: a head that failed stays failed, reconcile after reconcile.
            `${n.event === 'deployed' ? 'deployed' : 'failure'} ${n.revision}`;
    const key = `${notifier.namespace}/${notifier.name}\n${notifier.type}\n${subject}`;
    const now = this.now();
    const last = this.said.get(key);
    if (last !== undefined && (!RECURRING.has(n.event) || now - last < REPEAT_WINDOW_MS)) return false;
    this.said.delete(key);
    this.said.set(key, now);
    if (this.said.size > REMEMBERED) this.said.delete(this.said.keys().next().value!);
    return true;
  }

  private enqueue(delivery: Delivery): void {
    const max = this.options.maxQueue ?? DEFAULT_MAX_QUEUE;
    if (this.queue.length >= max) {
      const dropped = this.queue.shift()!;
      this.log.warn(
        { notifier: idOf(dropped.notifier), event: dropped.notification.event, queued: max },
        'too many notifications waiting; the oldest is dropped',
      );
    }
    this.queue.push(delivery);
    this.wake?.();
    // `running` is cleared in the same step the worker sees an empty queue (see work()).
    if (this.running) return;
    this.running = true;
    this.working = this.work().catch((error: unknown) => {
      this.running = false;
      this.log.error({ err: error }, 'notification worker failed');
    });
  }

  private async work(): Promise<void> {
    while (!this.closed && this.queue.length > 0) {
      const next = this.queue.reduce((a, b) => (b.dueAt < a.dueAt ? b : a));
      const waitMs = next.dueAt - this.now();
      if (waitMs > 0) {
        await this.sleep(waitMs);
        continue;
      }
      this.queue.splice(this.queue.indexOf(next), 1);
      await this.deliver(next);
    }
    // In the same step as the last look at the queue (no await in between): see enqueue().
    this.running = false;
  }

  private async deliver(delivery: Delivery): Promise<void> {
    const { notifier, notification } = delivery;
    const context = {
      notifier: idOf(notifier),
      type: notifier.type,
      event: notification.event,
      revision: shortRevision(notification.revision),
    };
    let url: URL;
    try {
      url = await this.urlOf(delivery);
    } catch (error) {
      if (this.unusable.has(idOf(notifier))) return;
      this.unusable.add(idOf(notifier));
      this.log.error({ ...context, err: error }, 'the Notifier has no usable URL; nothing is sent to it');
      return;
    }
    try {
      await (this.options.post ?? postNotification)(url, buildPayload(notifier.type, notification));
      this.log.info(context, 'notification sent');
    } catch (error) {
      const transient = error instanceof DeliveryError && error.transient;
      delivery.attempt += 1;
      if (!transient || delivery.attempt >= this.retry.attempts) {
        const why = transient ? `given up after ${delivery.attempt} attempts` : 'not retried';
        this.log.error({ ...context, err: error }, `the notification could not be sent; ${why}`);
        return;
      }
      const backOff = Math.min(this.retry.firstMs * 2 ** (delivery.attempt - 1), this.retry.maxMs);
      const waitMs = error.retryAfterMs ?? backOff;
      this.log.warn(
        { ...context, retryInMs: waitMs, err: error },
        'could not send a notification; will retry',
      );
      this.enqueue({ ...delivery, dueAt: this.now() + waitMs });
    }
  }

  /** Decrypted for this post only. */
  private async urlOf({ notifier, secret }: Delivery): Promise<URL> {
    const where = `Secret ${notifier.namespace}/${notifier.urlFrom.secret} key ${notifier.urlFrom.key}`;
    if (secret === undefined) throw new DeliveryError(`${where} is not in the revision`, false);
    if (this.options.readSecret === null)
      throw new DeliveryError(
        `${where} cannot be read: the operator has no age key (BERTH_AGE_KEY_FILE)`,
        false,
      );
    const plaintext = await this.options.readSecret(secret, notifier.urlFrom.key);
    try {
      return parseNotifierUrl(Buffer.from(plaintext).toString('utf8'));
    } catch (error) {
      throw new DeliveryError(`${where}: ${(error as Error).message}`, false);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

function idOf(notifier: NotifierSpec): string {
  return `${notifier.namespace}/${notifier.name}`;
}

/**
 * What a reconcile's result is worth telling: a rollout that converged on the head (deployed), a
 * head rolled back, failed or refused. A reconcile that changed nothing, or that the
 * infrastructure interrupted (a node lost, the operator stopping), is not the revision's news.
 */
export function notificationOf(result: ReconcileResult): Omit<Notification, 'at' | 'cluster'> | null {
  const { error } = result;
  if (error === null) {
    if (result.outcome !== 'succeeded' || result.targetRevision === null) return null;
    return { event: 'deployed', revision: result.targetRevision };
  }
  if (result.outcome === 'interrupted' || error.disposition !== 'terminal') return null;
  const event: NotifierEvent =
    result.outcome === 'rolled back'
      ? 'rolled-back'
      : error.code === 'ERR_MANIFEST_INVALID' || error.code === 'ERR_NOT_SUPPORTED'
        ? 'invalid'
        : 'failed';
  const failed = result.rollout?.failure?.service;
  const slash = failed?.indexOf('/') ?? -1;
  return {
    event,
    revision: result.headRevision,
    ...(failed === undefined || slash < 0
      ? {}
      : { namespace: failed.slice(0, slash), service: failed.slice(slash + 1) }),
    reason: error.message,
  };
}
