/**
 * The dashboard's routes and the event stream over made-up data (no engine, no git): for the
 * browser tests of the page itself and for `npm run bench:dashboard`. The data answers like an
 * operator's: N services, two nodes, a history of two revisions (the newest failed and held as
 * failed), their plans, the branch head's plan, and replica logs that follow what `log()` adds.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { ReplicaLogLine } from '../../src/api/types.js';
import { dashboardRoutes } from '../../src/operator/dashboard-routes.js';
import { EventBus } from '../../src/operator/event-bus.js';
import { registerEventRoutes } from '../../src/operator/event-routes.js';
import type { HeadPlan } from '../../src/operator/head-plan.js';
import type { DashboardData, ListedNode, Overview } from '../../src/operator/overview.js';
import type { HistoryEntry, RevisionPlan } from '../../src/operator/state-store.js';

export const FAKE_TOKEN = 'a-dashboard-token-for-tests';
export const GOOD = 'a'.repeat(40);
export const BAD = 'b'.repeat(40);
/** A revision of the hostile data: its author, message and outcome are markup. */
export const HOSTILE = 'd'.repeat(40);

/** Values from users (commit messages, labels, names) that would run script if the page parsed them as HTML. */
export const HOSTILE_TEXT = {
  author: '"><img src=x onerror=alert("author")>',
  message: '</td><script>alert("message")</script>',
  reason: '<b onmouseover=alert("reason")>never healthy</b>',
  label: '\'><img src=x onerror=alert("label")>',
  event: '<img src=x onerror=alert("event")>',
  path: '<script>alert("path")</script>',
};

export interface FakeDashboardOptions {
  /** Adds HOSTILE_TEXT to the history, a node's labels, the events and the repository. */
  hostile?: boolean;
}

export interface FakeDashboard {
  app: FastifyInstance;
  base: string;
  bus: EventBus;
  nodes: ListedNode[];
  triggers: string[];
  failed: Set<string>;
  /** Adds a line to every replica's logs (a follower gets it at once). */
  log(text: string): void;
  close(): Promise<void>;
}

function historyEntry(revision: string, outcome: HistoryEntry['outcome'], at: string): HistoryEntry {
  return {
    at,
    revision,
    author: 'Ada <ada@example.com>',
    message: revision === BAD ? 'web v2: a broken health check' : 'web v1',
    service: 'team-0/service-1',
    change: 'update',
    outcome,
    reason: outcome === 'succeeded' ? null : 'replica team-0-service-1-1 never became healthy',
    durationMs: 1000,
    started: [],
    removed: [],
  };
}

function hostileEntry(): HistoryEntry {
  return {
    ...historyEntry(HOSTILE, 'rolled back', '2026-01-01T12:00:00.000Z'),
    author: HOSTILE_TEXT.author,
    message: `${HOSTILE_TEXT.message}\nthe second line`,
    reason: HOSTILE_TEXT.reason,
  };
}

function overviewOf(
  services: number,
  nodes: ListedNode[],
  failed: Set<string>,
  bus: EventBus,
  hostile: boolean,
): Overview {
  const short = GOOD.slice(0, 12);
  const history = [
    historyEntry(BAD, 'rolled back', '2026-01-01T11:00:00.000Z'),
    historyEntry(GOOD, 'succeeded', '2026-01-01T10:00:00.000Z'),
  ];
  return {
    generatedAt: new Date().toISOString(),
    repository: { repo: '/srv/deploy', path: hostile ? HOSTILE_TEXT.path : 'deploy', branch: 'main' },
    head: BAD,
    target: GOOD,
    deployed: { revision: GOOD, at: '2026-01-01T10:00:00.000Z' },
    headDiffers: failed.has(BAD)
      ? { reason: 'a replica never became healthy', failedAt: '2026-01-01T11:00:00.000Z' }
      : null,
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        reason: 'ReconciliationSucceeded',
        message: `the cluster runs ${short}`,
        lastTransitionTime: new Date().toISOString(),
      },
    ],
    lastReconcile: { id: 'r1', outcome: 'unchanged', reason: null },
    lastError: null,
    rollout: null,
    events: bus.since(0).slice(-50),
    jobs: [],
    services: Array.from({ length: services }, (_, i) => ({
      namespace: `team-${i % 5}`,
      // Text that would be markup if the page parsed it as HTML.
      name: i === 0 ? '<img src=x onerror=alert(1)>' : `service-${i}`,
      desired: 3,
      running: 3,
      healthy: 3,
      revisions: [short],
      nodes: ['n1', 'n2'],
      replicas: [1, 2, 3].map((slot) => ({
        name: `team-${i % 5}-service-${i}-${slot}`,
        node: slot === 2 ? 'n2' : 'n1',
        slot: String(slot),
        state: 'running',
        health: 'healthy',
        revision: short,
      })),
    })),
    nodes: nodes.map((n) => ({ ...n })),
    history: hostile ? [hostileEntry(), ...history] : history,
    canDrain: true,
    failed: failed.has(BAD)
      ? [{ revision: BAD, at: '2026-01-01T11:00:00.000Z', reason: 'never healthy' }]
      : [],
  };
}

/** Lines so far, then (following) each new one as it comes, until the reader leaves. */
function logLines(lines: string[], waiters: Set<() => void>, follow: boolean): AsyncIterable<ReplicaLogLine> {
  return {
    async *[Symbol.asyncIterator]() {
      let sent = 0;
      for (;;) {
        while (sent < lines.length) {
          yield {
            at: `2026-01-01T10:00:${String(sent % 60).padStart(2, '0')}.000000000Z`,
            stream: 'stdout',
            text: lines[sent]!,
          };
          sent += 1;
        }
        if (!follow) return;
        await new Promise<void>((resolve) => waiters.add(resolve));
      }
    },
  };
}

export async function startFakeDashboard(
  services: number,
  options: FakeDashboardOptions = {},
): Promise<FakeDashboard> {
  const hostile = options.hostile === true;
  const bus = new EventBus();
  if (hostile)
    bus.publish('rollout-started', { revision: HOSTILE, kind: 'rollout', message: HOSTILE_TEXT.event });
  const triggers: string[] = [];
  const failed = new Set([BAD]);
  const lines = ['listening on :8080', 'GET / 200'];
  const waiters = new Set<() => void>();
  const nodes: ListedNode[] = [
    { name: 'n1', status: 'ready', availability: 'active', kind: 'local', labels: {}, replicas: 150 },
    {
      name: 'n2',
      status: 'ready',
      availability: 'active',
      kind: 'joined',
      labels: hostile ? { zone: 'b', note: HOSTILE_TEXT.label } : { zone: 'b' },
      replicas: 150,
    },
  ];
  const plans: Record<string, RevisionPlan> = {
    [GOOD]: {
      at: '2026-01-01T10:00:00.000Z',
      text: `Plan for ${GOOD.slice(0, 12)}: 1 to update; 99 unchanged.\n`,
    },
    [BAD]: {
      at: '2026-01-01T11:00:00.000Z',
      text: `Plan for ${BAD.slice(0, 12)}: 1 to update; 99 unchanged.\n`,
    },
  };
  const data: DashboardData = {
    read: async () => overviewOf(services, nodes, failed, bus, hostile),
    revisionPlan: async (revision) => plans[revision] ?? null,
    headPlan: async (): Promise<HeadPlan> => ({
      revision: BAD,
      deployed: GOOD,
      text: `Plan for ${BAD.slice(0, 12)}: 1 to update; 99 unchanged.\n\n~ team-0/service-1: update\n`,
      hasChanges: true,
      why: failed.has(BAD)
        ? [`${BAD.slice(0, 12)} failed and is not tried again until a newer commit or a retry`]
        : [],
      failed: failed.has(BAD) ? { at: '2026-01-01T11:00:00.000Z', reason: 'never healthy' } : null,
    }),
    retry: async (revision) => failed.delete(revision),
    replicaLogs: (node, _replica, options) =>
      nodes.some((n) => n.name === node) ? logLines(lines, waiters, options.follow === true) : null,
  };
  const app = Fastify();
  registerEventRoutes(app, bus);
  await app.register(dashboardRoutes, {
    operator: {
      trigger: async (reason: string) => {
        triggers.push(reason);
        bus.publish('reconcile-started', {});
        return null;
      },
    },
    overview: data,
    nodes: {
      list: () => nodes,
      setAvailability: async (name, availability) => {
        const found = nodes.find((n) => n.name === name);
        if (!found) throw new Error(`no node ${name}`);
        found.availability = availability;
        bus.publish(`node-${availability}`, { node: name });
      },
    },
    token: FAKE_TOKEN,
  });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    app,
    base,
    bus,
    nodes,
    triggers,
    failed,
    log: (text) => {
      lines.push(text);
      for (const wake of waiters) wake();
      waiters.clear();
    },
    close: async () => {
      for (const wake of waiters) wake();
      await app.close();
    },
  };
}
