/**
 * Follows the health of this node's containers: the engine's lifecycle events and the prober's
 * verdicts become replica health, run history (restarts, deaths) and change notifications, and
 * decide which replicas this node's mesh leaves out at once (a replica that just died or failed
 * its check) before the operator's next table.
 */
import type { Logger } from '../core/log.js';
import type { HealthProber } from './health-prober.js';
import type { NodeContainers } from './node-containers.js';
import type { RunHistory } from './run-history.js';
import type { RuntimeContainer, RuntimeEvent, Subscription } from './runtime.js';

export interface HealthFollowingOptions {
  containers: NodeContainers;
  prober: HealthProber;
  history: RunHistory;
  log: Logger;
  /** Whether this node's mesh leaves a replica out whatever the operator's table says. */
  veto(name: string, on: boolean): void;
  /** A container was removed, by berth or behind its back (docker rm). */
  onDestroyed(name: string): void;
}

export interface HealthFollowing {
  /** Connects to the engine's events and reads every container of the node; once is enough. */
  start(): Promise<void>;
  /** Follows a container from now on (first seen, or just created). */
  track(container: RuntimeContainer): Promise<void>;
  /** Calls `listener` with a container name, or null when anything may have changed (a resync). */
  onChange(listener: (name: string | null) => void): () => void;
  close(): void;
}

export function createHealthFollowing(options: HealthFollowingOptions): HealthFollowing {
  const { containers, prober, history, log } = options;
  const veto = (name: string, on: boolean) => options.veto(name, on);
  const listeners = new Set<(name: string | null) => void>();
  const notify = (name: string | null) => {
    for (const listener of listeners) listener(name);
  };
  let subscription: Subscription | null = null;

  prober.onChange((name) => {
    notify(name);
    const health = prober.status(name)?.health;
    if (health === 'unhealthy') veto(name, true);
    else if (health === 'healthy') veto(name, false);
  });

  const track = (container: RuntimeContainer): Promise<void> => {
    history.noteSeen(container);
    return prober.track(container);
  };

  /** Re-reads every container of the node: after a start, or events missed while disconnected. */
  const resync = async () => {
    const current = await containers.list();
    const names = new Set(current.map((container) => container.name));
    for (const name of history.names()) {
      if (!names.has(name)) {
        history.forget(name);
        prober.untrack(name);
      }
    }
    await Promise.all(current.map(track));
  };

  const onEvent = (event: RuntimeEvent) => {
    if (event.kind === 'destroy') {
      veto(event.name, false);
      history.forgetDeaths(event.id);
      prober.untrack(event.name);
      notify(event.name);
      options.onDestroyed(event.name);
      return;
    }
    if (event.kind === 'die') {
      history.noteDeath(event.id, event.exitCode);
      veto(event.name, true);
    }
    notify(event.name);
    void reread(event.name)
      .catch((error: unknown) =>
        log.warn({ err: error, container: event.name }, 'could not follow a container event'),
      )
      .finally(() => notify(event.name));
  };

  const reread = async (name: string) => {
    const container = await containers.observe(name);
    if (container === null) {
      prober.untrack(name);
      return;
    }
    await track(container);
    // Running again without a health check to wait for: it may serve again.
    if (container.state === 'running' && prober.status(container.name) === null) veto(container.name, false);
  };

  return {
    async start() {
      await containers.runtime.ping();
      subscription ??= containers.runtime.watchManagedEvents(onEvent, () => {
        resync()
          .catch((error: unknown) =>
            log.warn({ err: error }, 'resync after reconnecting to docker events failed'),
          )
          .finally(() => notify(null));
      });
      await subscription.connected;
      await resync();
    },
    track,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      subscription?.close();
      subscription = null;
      listeners.clear();
    },
  };
}
