/**
 * Runs the health checks of running containers, eagerly (see health-state.ts for the rules).
 *
 * The health check comes from the container's berth.healthcheck label, not from agent memory, so
 * a restarted agent picks up every container where it left off. Probes reach containers the way
 * clients do: http and tcp through the port published on the node's address, exec with
 * `docker exec`. Docker's own HEALTHCHECK is not used: it probes at best once per interval and
 * its result only shows up on the next inspect.
 */
import http from 'node:http';
import net from 'node:net';
import type { Logger } from '../core/log.js';
import { LABELS, type PublishedPort } from '../api/types.js';
import { isHealthyHttpStatus } from '../manifests/health-status.js';
import type { HealthcheckSpec, HealthProbe } from '../manifests/types.js';
import {
  applyProbeOutcome,
  initialHealthState,
  probeIntervalMs,
  type HealthState,
  type ProbeOutcome,
} from './health-state.js';
import type { ContainerRuntime, RuntimeContainer } from './runtime.js';

/**
 * A connection to a published port is first accepted by Docker's userland proxy, which then
 * closes it at once when nothing listens in the container. A tcp probe therefore only passes when
 * the connection is still open (or data arrived) this long after it was accepted.
 */
const TCP_SETTLE_MS = 100;
const DETAIL_LIMIT = 300;

export interface HealthStatus {
  health: 'starting' | 'healthy' | 'unhealthy';
  detail: string | null;
}

export interface HealthProber {
  /**
   * Starts probing a running container that has a health check, or keeps probing it when this is
   * the same run already tracked; stops probing one that is not running. Resolves once the first
   * probe of this run has completed (at once when there is nothing to probe).
   */
  track(container: RuntimeContainer): Promise<void>;
  untrack(name: string): void;
  /** null when the container is not being probed (no health check, not running, unknown). */
  status(name: string): HealthStatus | null;
  /** Called with the container name whenever its health changes. */
  onChange(listener: (name: string) => void): () => void;
  close(): void;
}

export interface HealthProberOptions {
  runtime: ContainerRuntime;
  log: Logger;
  now?: () => number;
}

interface TrackedRun {
  name: string;
  id: string;
  startedAt: string | null;
  healthcheck: HealthcheckSpec;
  ports: PublishedPort[];
  state: HealthState;
  timer: NodeJS.Timeout | null;
  stopped: boolean;
  firstProbe: Promise<void>;
  firstProbeDone: () => void;
}

/** The health check a container was created with; null for none or an unreadable label. */
export function healthcheckFromLabels(labels: Record<string, string>): HealthcheckSpec | null {
  const raw = labels[LABELS.healthcheck];
  if (raw === undefined || raw === '' || raw === 'null') return null;
  try {
    const parsed = JSON.parse(raw) as HealthcheckSpec | null;
    if (parsed === null || typeof parsed !== 'object' || parsed.probe === undefined) return null;
    return parsed;
  } catch {
    return null;
  }
}

/** What the probing of every run shares. */
interface ProbeContext {
  runtime: ContainerRuntime;
  log: Logger;
  now: () => number;
  /** A run's health changed. */
  emit(name: string): void;
}

export function createHealthProber(options: HealthProberOptions): HealthProber {
  const runs = new Map<string, TrackedRun>();
  const listeners = new Set<(name: string) => void>();
  let closed = false;
  const context: ProbeContext = {
    runtime: options.runtime,
    log: options.log,
    now: options.now ?? Date.now,
    emit: (name) => {
      for (const listener of listeners) listener(name);
    },
  };

  const untrack = (name: string) => {
    const run = runs.get(name);
    if (run === undefined) return;
    stopRun(run);
    runs.delete(name);
    context.emit(name);
  };

  return {
    track(container) {
      if (closed) return Promise.resolve();
      const healthcheck = healthcheckFromLabels(container.labels);
      if (healthcheck === null || container.state !== 'running') {
        untrack(container.name);
        return Promise.resolve();
      }
      const existing = runs.get(container.name);
      if (
        existing !== undefined &&
        existing.id === container.id &&
        existing.startedAt === container.startedAt
      ) {
        if (container.ports.length > 0) existing.ports = container.ports;
        return existing.firstProbe;
      }
      if (existing !== undefined) untrack(container.name);
      const run = newRun(container, healthcheck, context.now);
      runs.set(container.name, run);
      scheduleProbe(context, run, 0);
      context.emit(container.name);
      return run.firstProbe;
    },

    untrack,

    status(name) {
      const run = runs.get(name);
      return run === undefined ? null : { health: run.state.health, detail: run.state.detail };
    },

    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    close() {
      closed = true;
      for (const run of runs.values()) stopRun(run);
      runs.clear();
      listeners.clear();
    },
  };
}

function newRun(container: RuntimeContainer, healthcheck: HealthcheckSpec, now: () => number): TrackedRun {
  const startedAtMs = container.startedAt === null ? now() : Date.parse(container.startedAt);
  let firstProbeDone = () => {};
  const firstProbe = new Promise<void>((resolve) => (firstProbeDone = resolve));
  return {
    name: container.name,
    id: container.id,
    startedAt: container.startedAt,
    healthcheck,
    ports: container.ports,
    state: initialHealthState(startedAtMs, now()),
    timer: null,
    stopped: false,
    firstProbe,
    firstProbeDone,
  };
}

function stopRun(run: TrackedRun): void {
  run.stopped = true;
  if (run.timer !== null) clearTimeout(run.timer);
  run.timer = null;
  run.firstProbeDone();
}

function scheduleProbe(context: ProbeContext, run: TrackedRun, delayMs: number): void {
  if (run.stopped) return;
  run.timer = setTimeout(() => void probeOnce(context, run), delayMs);
  // Probing never keeps a process alive on its own; close() is the orderly way out.
  run.timer.unref();
}

async function probeOnce(context: ProbeContext, run: TrackedRun): Promise<void> {
  run.timer = null;
  if (run.stopped) return;
  const startedMs = context.now();
  let outcome: ProbeOutcome;
  try {
    outcome = await runProbe(
      context.runtime,
      run.name,
      run.healthcheck.probe,
      run.ports,
      run.healthcheck.timeoutMs,
    );
  } catch (error) {
    outcome = { ok: false, detail: error instanceof Error ? error.message : String(error) };
  }
  if (run.stopped) return;
  const previous = run.state;
  run.state = applyProbeOutcome(previous, outcome, context.now(), run.healthcheck);
  run.firstProbeDone();
  if (run.state.health !== previous.health) {
    const log = context.log.child({ container: run.name });
    if (run.state.health === 'unhealthy') log.warn({ detail: run.state.detail }, 'replica unhealthy');
    else log.info({ health: run.state.health }, 'replica health changed');
    context.emit(run.name);
  }
  const elapsed = context.now() - startedMs;
  scheduleProbe(context, run, Math.max(0, probeIntervalMs(run.state, run.healthcheck) - elapsed));
}

async function runProbe(
  runtime: ContainerRuntime,
  name: string,
  probe: HealthProbe,
  ports: PublishedPort[],
  timeoutMs: number,
): Promise<ProbeOutcome> {
  switch (probe.type) {
    case 'http': {
      const endpoint = publishedEndpoint(ports, probe.port);
      if (endpoint === null) return { ok: false, detail: `port ${probe.port}/tcp is not published` };
      return probeHttp(endpoint, probe.path, probe.expectStatus, timeoutMs);
    }
    case 'tcp': {
      const endpoint = publishedEndpoint(ports, probe.port);
      if (endpoint === null) return { ok: false, detail: `port ${probe.port}/tcp is not published` };
      return probeTcp(endpoint, probe.port, timeoutMs);
    }
    case 'exec': {
      const result = await runtime.exec(name, probe.command, timeoutMs);
      if (result.exitCode === 0) return { ok: true };
      const output = result.output.trim().slice(0, DETAIL_LIMIT);
      const what =
        result.exitCode === null
          ? `did not finish within ${timeoutMs} ms`
          : `exited with code ${result.exitCode}`;
      return {
        ok: false,
        detail: `exec ${JSON.stringify(probe.command)} ${what}${output === '' ? '' : `: ${output}`}`,
      };
    }
  }
}

interface Endpoint {
  host: string;
  port: number;
}

function publishedEndpoint(ports: PublishedPort[], target: number): Endpoint | null {
  const bindings = ports.filter(
    (port) => port.target === target && port.protocol === 'tcp' && port.hostPort > 0,
  );
  const binding = bindings.find((port) => !port.hostIp.includes(':')) ?? bindings[0];
  if (binding === undefined) return null;
  // A wildcard publish is reached on loopback: the agent runs on the node itself.
  const host =
    binding.hostIp === '' || binding.hostIp === '0.0.0.0'
      ? '127.0.0.1'
      : binding.hostIp === '::'
        ? '::1'
        : binding.hostIp;
  return { host, port: binding.hostPort };
}

function probeHttp(
  endpoint: Endpoint,
  path: string,
  expectStatus: number[],
  timeoutMs: number,
): Promise<ProbeOutcome> {
  const url = `http://${endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}${path}`;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: ProbeOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      resolve(outcome);
    };
    // A fresh connection per probe (no keep-alive agent): a probe must prove the port accepts.
    const request = http.request(
      {
        host: endpoint.host,
        port: endpoint.port,
        path,
        method: 'GET',
        agent: false,
        headers: { 'user-agent': 'berth-probe' },
      },
      (response) => {
        const status = response.statusCode ?? 0;
        response.resume();
        finish(
          isHealthyHttpStatus(expectStatus, status)
            ? { ok: true }
            : { ok: false, detail: `GET ${url} answered ${status}` },
        );
      },
    );
    const timer = setTimeout(
      () => finish({ ok: false, detail: `GET ${url}: no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
    request.on('error', (error) => finish({ ok: false, detail: `GET ${url}: ${error.message}` }));
    request.end();
  });
}

function probeTcp(endpoint: Endpoint, target: number, timeoutMs: number): Promise<ProbeOutcome> {
  const where = `${endpoint.host}:${endpoint.port} (container port ${target})`;
  return new Promise((resolve) => {
    let settled = false;
    let settleTimer: NodeJS.Timeout | null = null;
    const finish = (outcome: ProbeOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (settleTimer !== null) clearTimeout(settleTimer);
      socket.destroy();
      resolve(outcome);
    };
    const socket = net.connect({ host: endpoint.host, port: endpoint.port });
    const timer = setTimeout(
      () => finish({ ok: false, detail: `tcp ${where}: no connection within ${timeoutMs} ms` }),
      timeoutMs,
    );
    socket.once('connect', () => {
      settleTimer = setTimeout(() => finish({ ok: true }), Math.min(TCP_SETTLE_MS, timeoutMs));
    });
    socket.once('data', () => finish({ ok: true }));
    socket.once('end', () =>
      finish({ ok: false, detail: `tcp ${where}: connection closed at once (nothing listening?)` }),
    );
    socket.once('close', () =>
      finish({ ok: false, detail: `tcp ${where}: connection closed at once (nothing listening?)` }),
    );
    socket.once('error', (error) => finish({ ok: false, detail: `tcp ${where}: ${error.message}` }));
  });
}
