import { Command, Option } from 'commander';
import type { NodeAgent, ObservedState } from '../api/types.js';
import { openAdminClientIfClustered } from '../cluster/admin-client.js';
import { createLogger, type Logger } from '../core/log.js';
import { redactCredentials } from '../core/url-credential.js';
import type { DesiredState } from '../manifests/types.js';
import { observeCluster } from '../api/observe-cluster.js';
import { computePlan, isAlive } from '../plan/compute-plan.js';
import { jobStatusRows, type JobStatusRow } from '../plan/job-status.js';
import type { Plan } from '../plan/types.js';
import type { Condition } from '../operator/conditions.js';
import type { HistoryEntry, OperatorState, RecordedConditions } from '../operator/state-store.js';
import { targetRevision } from '../operator/target-revision.js';
import {
  addClusterOptions,
  closeCluster,
  DEFAULT_BRANCH,
  openCluster,
  openRevisionSource,
  openStateStore,
  repoIdentity,
  type ClusterOptions,
} from './context.js';
import { alignColumns } from './columns.js';

interface StatusOptions extends ClusterOptions {
  repo?: string;
  path?: string;
  branch?: string;
  format: 'text' | 'json';
}

export interface ServiceStatusRow {
  service: string;
  desired: number | null;
  running: number;
  healthy: number;
  revisions: string[];
  nodes: string[];
  pending: { slot: string; reason: string }[];
}

/** The `--format json` document. */
export interface StatusReport {
  repository: { repo: string; path: string; branch: string } | null;
  head: string | null;
  deployed: OperatorState['lastGood'];
  headFailed: OperatorState['failed'][string] | null;
  converged: boolean | null;
  /** The operator's Ready, Reconciling and Stalled, as `berth run` last recorded them ([] if never). */
  conditions: Condition[];
  conditionsRecordedAt: string | null;
  /** How the newest rollout ended, per service, from the history (interrupted ones with their reason). */
  lastRollout: Pick<HistoryEntry, 'at' | 'revision' | 'service' | 'change' | 'outcome' | 'reason'>[];
  nodes: { name: string; status: string; address: string; replicas: number }[];
  services: ServiceStatusRow[];
  /** Each Job of the desired state at its spec (every recorded Job when the repository cannot be read). */
  jobs: JobStatusRow[];
  sourceError: string | null;
}

export function registerStatusCommand(program: Command): void {
  const command = new Command('status')
    .description(
      "what runs on the cluster, the operator's conditions (Ready, Reconciling, Stalled), the deployed and the branch-head revision, and why they differ",
    )
    .option('--repo <repo>', 'repository (default: the one last applied, from the state dir)')
    .option('--path <path>', 'manifest sub-directory (default: as last applied)')
    .option('--branch <branch>', 'branch (default: as last applied)')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'));
  addClusterOptions(command);
  command.action(async (options: StatusOptions) => {
    const report = await readStatus(options);
    process.stdout.write(
      options.format === 'json'
        ? `${JSON.stringify(report, null, 2)}\n`
        : `${formatStatus(report).join('\n')}\n`,
    );
  });
  program.addCommand(command);
}

async function readStatus(options: StatusOptions): Promise<StatusReport> {
  const log = createLogger({ level: process.env['BERTH_LOG_LEVEL'] ?? 'warn' });
  const store = openStateStore(options.stateDir);
  const state = await store.read();
  const repo = options.repo ?? state.source?.repo;
  const where = {
    path: options.path ?? state.source?.path ?? '.',
    branch: options.branch ?? state.source?.branch ?? DEFAULT_BRANCH,
  };
  // Read with the credential --repo may carry; shown without it.
  const repository = repo ? { repo: repoIdentity(repo), ...where } : null;
  const { head, desired, sourceError } = await readDesired(
    repo ? { repo, ...where } : null,
    state,
    options.stateDir,
    log,
  );
  const observed = await observe(options, log);
  const plan = desired ? computePlan(desired, observed) : null;
  const recorded: RecordedConditions | null = await store.readConditions();
  const history = await store.readHistory();
  const newest = history.at(-1)?.at;
  return {
    repository,
    head,
    deployed: state.lastGood,
    headFailed: head ? (state.failed[head] ?? null) : null,
    converged: plan ? !plan.hasChanges : null,
    conditions: recorded?.conditions ?? [],
    conditionsRecordedAt: recorded?.at ?? null,
    lastRollout: history
      .filter((e) => e.at === newest)
      .map(({ at, revision, service, change, outcome, reason }) => ({
        at,
        revision,
        service,
        change,
        outcome,
        reason,
      })),
    nodes: observed.nodes.map((n) => ({
      name: n.name,
      status: n.status,
      address: n.address,
      replicas: n.replicas.length,
    })),
    services: serviceRows(plan, observed),
    jobs: jobStatusRows(desired, state.jobs ?? {}),
    sourceError,
  };
}

/** The desired state the operator converges on now: the head, or the last good revision (one rule). */
async function readDesired(
  repository: StatusReport['repository'],
  state: OperatorState,
  stateDir: string,
  log: Logger,
): Promise<{ head: string | null; desired: DesiredState | null; sourceError: string | null }> {
  if (repository === null) return { head: null, desired: null, sourceError: null };
  let head: string | null = null;
  try {
    const source = await openRevisionSource({ ...repository, stateDir }, log);
    head = await source.head();
    // With nothing to converge on (the head failed and no other good revision), the head still
    // says what is desired.
    const target =
      targetRevision(head, state.failed[head] !== undefined, state.lastGood?.revision ?? null) ?? head;
    const loaded = await source.load(target);
    return { head, desired: loaded.ok ? loaded.desired : null, sourceError: null };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { head, desired: null, sourceError: redactCredentials(message) };
  }
}

/** A state dir whose operator listens for agents: ask it, it knows every joined node. */
async function observe(options: StatusOptions, log: Logger): Promise<ObservedState> {
  const operator = await openAdminClientIfClustered(options.stateDir);
  if (operator) return operator.observed();
  const agents: Map<string, NodeAgent> = await openCluster(options, log);
  try {
    return await observeCluster(agents, log);
  } finally {
    await closeCluster(agents);
  }
}

function serviceRows(plan: Plan | null, observed: ObservedState): ServiceStatusRow[] {
  const rows = new Map<string, ServiceStatusRow>();
  const row = (key: string): ServiceStatusRow => {
    const r = rows.get(key) ?? {
      service: key,
      desired: null,
      running: 0,
      healthy: 0,
      revisions: [],
      nodes: [],
      pending: [],
    };
    rows.set(key, r);
    return r;
  };
  for (const s of plan?.services ?? []) {
    if (s.change === 'remove') continue;
    const r = row(`${s.namespace}/${s.name}`);
    r.desired = s.desiredReplicas;
    r.pending = s.pending;
  }
  for (const node of observed.nodes) {
    for (const replica of node.replicas) {
      const r = row(`${replica.namespace}/${replica.service}`);
      if (replica.state === 'running') r.running += 1;
      if (isAlive(replica) && replica.health !== 'starting') r.healthy += 1;
      const rev = replica.revision.slice(0, 12);
      if (!r.revisions.includes(rev)) r.revisions.push(rev);
      if (!r.nodes.includes(node.name)) r.nodes.push(node.name);
    }
  }
  return [...rows.values()].sort((a, b) => a.service.localeCompare(b.service));
}

function formatStatus(report: StatusReport): string[] {
  const { repository, head, deployed, headFailed } = report;
  const out: string[] = [];
  if (repository) {
    const { repo, path, branch } = repository;
    out.push(`Repository   ${repo}${path !== '.' ? ` (${path})` : ''} @ ${branch}`);
  }
  if (head) out.push(`Branch head  ${head.slice(0, 12)}`);
  if (report.sourceError) out.push(`Source error ${report.sourceError}`);
  out.push(
    `Deployed     ${deployed ? `${deployed.revision.slice(0, 12)} (last good, since ${deployed.at})` : '(nothing yet)'}`,
  );
  out.push(...formatConditions(report));
  out.push(...formatLastRollout(report));
  if (headFailed && head) {
    out.push(
      '',
      `The branch head ${head.slice(0, 12)} FAILED (${headFailed.at}) and is not retried until a newer commit: ${headFailed.reason}`,
    );
    if (deployed) out.push(`The cluster runs the older revision ${deployed.revision.slice(0, 12)} instead.`);
  } else if (report.converged === false) {
    out.push(
      '',
      'The cluster differs from the desired state; the next reconcile converges it (see `berth plan`).',
    );
  }
  out.push(
    '',
    `NODES  ${report.nodes.map((n) => `${n.name} (${n.status}, ${n.replicas} replicas)`).join(', ')}`,
    '',
  );
  out.push(...formatServices(report.services));
  if (report.jobs.length > 0) out.push('', ...formatJobs(report.jobs));
  return out;
}

/** `Stalled: RolloutFailed (since ...)` and its message: the one condition that holds says it all. */
function formatConditions(report: StatusReport): string[] {
  const holding = report.conditions.find((c) => c.status === 'True');
  if (!holding) return [];
  return [
    `Operator     ${holding.type}: ${holding.reason} (since ${holding.lastTransitionTime}, recorded ${report.conditionsRecordedAt ?? '?'})`,
    `             ${holding.message}`,
    `Conditions   ${report.conditions.map((c) => `${c.type}=${c.status}`).join(' ')}`,
  ];
}

/** `Last rollout 1a2b3c4d5e6f interrupted (at)` and, for what did not succeed, each service's reason. */
function formatLastRollout(report: StatusReport): string[] {
  const first = report.lastRollout[0];
  if (!first) return [];
  const outcomes = [...new Set(report.lastRollout.map((e) => e.outcome))].join(', ');
  return [
    `Last rollout ${first.revision.slice(0, 12)} ${outcomes} (${first.at})`,
    ...report.lastRollout
      .filter((e) => e.outcome !== 'succeeded' && e.reason)
      .map((e) => `             ${e.service ?? '(revision)'} ${e.outcome}: ${e.reason ?? ''}`),
  ];
}

function formatJobs(jobs: JobStatusRow[]): string[] {
  const header = ['JOB', 'STATE', 'COMPLETIONS', 'LAST RUN', 'NODE', 'OUTCOME'];
  const table = jobs.map((j) => [
    `${j.namespace}/${j.name}`,
    j.state,
    `${j.completions.succeeded}/${j.completions.required ?? '?'}`,
    j.lastRun?.at ?? '-',
    j.lastRun?.node ?? '-',
    j.lastRun === null
      ? '-'
      : j.lastRun.exitCode === null
        ? j.lastRun.outcome
        : `${j.lastRun.outcome} (exit ${j.lastRun.exitCode})`,
  ]);
  const lines = alignColumns([header, ...table]);
  for (const j of jobs) {
    if (j.reason !== null) lines.push(`${j.namespace}/${j.name} ${j.state}: ${j.reason}`);
    else if (j.state === 'pending' && j.before.length > 0)
      lines.push(`${j.namespace}/${j.name} runs at the next reconcile, before ${j.before.join(', ')} roll`);
  }
  return lines;
}

function formatServices(services: ServiceStatusRow[]): string[] {
  const header = ['SERVICE', 'DESIRED', 'RUNNING', 'HEALTHY', 'REVISION', 'NODES'];
  const table = services.map((r) => [
    r.service,
    r.desired === null ? '-' : String(r.desired),
    String(r.running),
    String(r.healthy),
    r.revisions.join(',') || '-',
    r.nodes.join(',') || '-',
  ]);
  const lines = alignColumns([header, ...table]);
  for (const r of services)
    for (const p of r.pending) lines.push(`${r.service} slot ${p.slot} pending: ${p.reason}`);
  return lines;
}
