/**
 * The soak's traffic and what it is judged against:
 * - a steady, bounded request loop through the routing mesh, spread over the published port of
 *   every node (loopback only), recording each failed request with when it was sent and answered,
 *   the node it entered by and why it failed;
 * - a monitor that asks every replica straight on its own port, twice a second, whether it
 *   answers: a failure while none did is not the mesh's fault.
 */
import { getOnce } from '../../test/helpers/load-loop.js';
import { managedOn, type TestEngine } from '../../test/helpers/multi-node.js';
import { NAMESPACE, SERVICE } from './service.js';

const REQUEST_TIMEOUT_MS = 5000;
const MONITOR_EVERY_MS = 500;
const PROBE_TIMEOUT_MS = 1000;

export interface FailedRequest {
  sentAt: number;
  doneAt: number;
  node: string;
  error: string;
}

export interface RequestReport {
  sent: number;
  failed: FailedRequest[];
  /** 200 answers by body. */
  bodies: Map<string, number>;
}

/**
 * `perSecond` requests a second in all, round robin over the engines' addresses, each on a new
 * connection; stops by itself after `maxMs` (never more than perSecond * maxMs / 1000 requests).
 */
export function startRequestLoop(options: {
  engines: TestEngine[];
  port: number;
  perSecond: number;
  maxMs: number;
}): { stop(): Promise<RequestReport> } {
  const report: RequestReport = { sent: 0, failed: [], bodies: new Map() };
  const limit = Math.floor((options.perSecond * options.maxMs) / 1000);
  const inFlight = new Set<Promise<void>>();
  const fire = (): void => {
    if (report.sent >= limit) return clearInterval(timer);
    const engine = options.engines[report.sent % options.engines.length]!;
    report.sent++;
    const sentAt = Date.now();
    const one = getOnce(engine.address, options.port, REQUEST_TIMEOUT_MS)
      .then((answer) => {
        if (answer.status !== 200) throw new Error(`HTTP ${answer.status}`);
        report.bodies.set(answer.body, (report.bodies.get(answer.body) ?? 0) + 1);
      })
      .catch((error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        report.failed.push({ sentAt, doneAt: Date.now(), node: engine.node, error: message });
      })
      .finally(() => inFlight.delete(one));
    inFlight.add(one);
  };
  const timer = setInterval(fire, 1000 / options.perSecond);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all([...inFlight]);
      return report;
    },
  };
}

export interface HealthSample {
  at: number;
  /** Replicas that answered 200 straight on their own port. */
  healthy: number;
}

/** Samples how many replicas answer, every half second, until stopped or `maxMs` pass. */
export function startHealthMonitor(options: { engines: TestEngine[]; maxMs: number }): {
  stop(): Promise<HealthSample[]>;
} {
  const samples: HealthSample[] = [];
  const until = Date.now() + options.maxMs;
  let running = true;
  const answers = async (engine: TestEngine): Promise<number> => {
    const replicas = await managedOn(engine, NAMESPACE, SERVICE).catch(() => []);
    const probes = replicas
      .filter((r) => r.state === 'running' && r.port !== null)
      .map((r) =>
        getOnce(engine.address, r.port!, PROBE_TIMEOUT_MS).then(
          (a) => a.status === 200,
          () => false,
        ),
      );
    return (await Promise.all(probes)).filter(Boolean).length;
  };
  const loop = (async () => {
    while (running && Date.now() < until) {
      const at = Date.now();
      const counts = await Promise.all(options.engines.map(answers));
      samples.push({ at, healthy: counts.reduce((a, b) => a + b, 0) });
      await new Promise((r) => setTimeout(r, Math.max(0, MONITOR_EVERY_MS - (Date.now() - at))));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

/** A time range, in Date.now() milliseconds. */
export interface Window {
  from: number;
  to: number;
}

export interface ClassifiedFailures {
  /**
   * Entered by a node whose agent was killed or frozen while its engine was down too: nothing of
   * that node was left to answer (a lost host). The node's mesh host outlives its agent, so an agent
   * fault alone is no excuse.
   */
  entryHostDown: FailedRequest[];
  /** While no replica answered on its own port. */
  noHealthyReplica: FailedRequest[];
  /** While some replica answered: the failures the soak fails on. */
  withHealthyReplica: FailedRequest[];
  /** Of withHealthyReplica: entered by a node whose agent was killed or frozen (its mesh host serves on). */
  withHealthyReplicaAgentDown: FailedRequest[];
}

/** Per node: when its agent was killed or frozen, and when its engine was down. */
export interface DownWindows {
  agent: Map<string, Window[]>;
  engine: Map<string, Window[]>;
}

export function classifyFailures(
  failed: FailedRequest[],
  samples: HealthSample[],
  down: DownWindows,
): ClassifiedFailures {
  const result: ClassifiedFailures = {
    entryHostDown: [],
    noHealthyReplica: [],
    withHealthyReplica: [],
    withHealthyReplicaAgentDown: [],
  };
  const overlaps = (w: Window, f: FailedRequest): boolean => w.from <= f.doneAt && f.sentAt <= w.to;
  const during = (windows: Map<string, Window[]>, f: FailedRequest): boolean =>
    (windows.get(f.node) ?? []).some((w) => overlaps(w, f));
  for (const f of failed) {
    const agentDown = during(down.agent, f);
    if (agentDown && during(down.engine, f)) {
      result.entryHostDown.push(f);
      continue;
    }
    // A sample is taken over up to a second (the probes' timeout): one on either side counts.
    const none = samples.some(
      (s) => s.healthy === 0 && s.at >= f.sentAt - PROBE_TIMEOUT_MS - MONITOR_EVERY_MS && s.at <= f.doneAt,
    );
    if (none) {
      result.noHealthyReplica.push(f);
      continue;
    }
    result.withHealthyReplica.push(f);
    if (agentDown) result.withHealthyReplicaAgentDown.push(f);
  }
  return result;
}

/** Windows (from the monitor) in which no replica answered, merged. */
export function noHealthyWindows(samples: HealthSample[]): Window[] {
  const windows: Window[] = [];
  let open: Window | null = null;
  for (const s of samples) {
    if (s.healthy === 0) {
      open ??= { from: s.at, to: s.at };
      open.to = s.at;
    } else if (open) {
      open.to = s.at;
      windows.push(open);
      open = null;
    }
  }
  if (open) windows.push(open);
  return windows;
}
