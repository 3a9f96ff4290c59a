import { Command, Option } from 'commander';
import type { NodeAgent } from '../api/types.js';
import { openAdminClientIfClustered } from '../cluster/admin-client.js';
import { createLogger } from '../core/log.js';
import type { DesiredState } from '../manifests/types.js';
import { observeCluster } from '../api/observe-cluster.js';
import { computePlan, isAlive } from '../plan/compute-plan.js';
import {
  addClusterOptions,
  closeCluster,
  DEFAULT_BRANCH,
  openCluster,
  openRevisionSource,
  openStateStore,
  type ClusterOptions,
} from './context.js';

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

export function registerStatusCommand(program: Command): void {
  const command = new Command('status')
    .description('what runs on the cluster, the deployed and the branch-head revision, and why they differ')
    .option('--repo <repo>', 'repository (default: the one last applied, from the state dir)')
    .option('--path <path>', 'manifest sub-directory (default: as last applied)')
    .option('--branch <branch>', 'branch (default: as last applied)')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'));
  addClusterOptions(command);
  command.action(async (options: StatusOptions) => {
    const log = createLogger({ level: process.env['BERTH_LOG_LEVEL'] ?? 'warn' });
    const store = openStateStore(options.stateDir);
    const state = await store.read();
    const repo = options.repo ?? state.source?.repo;
    const path = options.path ?? state.source?.path ?? '.';
    const branch = options.branch ?? state.source?.branch ?? DEFAULT_BRANCH;

    let head: string | null = null;
    let desired: DesiredState | null = null;
    let sourceError: string | null = null;
    if (repo) {
      try {
        const source = await openRevisionSource({ repo, path, branch, stateDir: options.stateDir }, log);
        head = await source.head();
        const target = state.failed[head] && state.lastGood ? state.lastGood.revision : head;
        const loaded = await source.load(target);
        if (loaded.ok) desired = loaded.desired;
      } catch (error) {
        sourceError = error instanceof Error ? error.message : String(error);
      }
    }
    // A state dir whose operator listens for agents: ask it, it knows every joined node.
    const operator = await openAdminClientIfClustered(options.stateDir);
    const agents = operator ? new Map<string, NodeAgent>() : await openCluster(options, log);
    try {
      const observed = operator ? await operator.observed() : await observeCluster(agents, log);
      const plan = desired ? computePlan(desired, observed) : null;
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
      const failedHead = head ? (state.failed[head] ?? null) : null;
      const report = {
        repository: repo ? { repo, path, branch } : null,
        head,
        deployed: state.lastGood,
        headFailed: failedHead,
        converged: plan ? !plan.hasChanges : null,
        nodes: observed.nodes.map((n) => ({
          name: n.name,
          status: n.status,
          address: n.address,
          replicas: n.replicas.length,
        })),
        services: [...rows.values()].sort((a, b) => a.service.localeCompare(b.service)),
        sourceError,
      };
      if (options.format === 'json') {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return;
      }
      const out: string[] = [];
      if (repo) out.push(`Repository   ${repo}${path !== '.' ? ` (${path})` : ''} @ ${branch}`);
      if (head) out.push(`Branch head  ${head.slice(0, 12)}`);
      if (sourceError) out.push(`Source error ${sourceError}`);
      out.push(
        `Deployed     ${state.lastGood ? `${state.lastGood.revision.slice(0, 12)} (last good, since ${state.lastGood.at})` : '(nothing yet)'}`,
      );
      if (failedHead && head) {
        out.push('');
        out.push(
          `The branch head ${head.slice(0, 12)} FAILED (${failedHead.at}) and is not retried until a newer commit: ${failedHead.reason}`,
        );
        if (state.lastGood)
          out.push(`The cluster runs the older revision ${state.lastGood.revision.slice(0, 12)} instead.`);
      } else if (plan?.hasChanges) {
        out.push(
          '',
          'The cluster differs from the desired state; the next reconcile converges it (see `berth plan`).',
        );
      }
      out.push('');
      out.push(
        `NODES  ${observed.nodes.map((n) => `${n.name} (${n.status}, ${n.replicas.length} replicas)`).join(', ')}`,
      );
      out.push('');
      const header = ['SERVICE', 'DESIRED', 'RUNNING', 'HEALTHY', 'REVISION', 'NODES'];
      const table = [...rows.values()]
        .sort((a, b) => a.service.localeCompare(b.service))
        .map((r) => [
          r.service,
          r.desired === null ? '-' : String(r.desired),
          String(r.running),
          String(r.healthy),
          r.revisions.join(',') || '-',
          r.nodes.join(',') || '-',
        ]);
      const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
      for (const line of [header, ...table])
        out.push(
          line
            .map((cell, i) => cell.padEnd(widths[i]!))
            .join('  ')
            .trimEnd(),
        );
      for (const r of rows.values())
        for (const p of r.pending) out.push(`${r.service} slot ${p.slot} pending: ${p.reason}`);
      process.stdout.write(`${out.join('\n')}\n`);
    } finally {
      await closeCluster(agents);
    }
  });
  program.addCommand(command);
}
