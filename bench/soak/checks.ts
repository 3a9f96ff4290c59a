/**
 * The end checks, read from the engines themselves (container labels), from `berth status` and
 * from the operator's state dir:
 * - replicas: on every ready node together exactly the desired count, running, all labelled with
 *   the last good commit and one spec hash, no two in one slot, no other managed container
 *   (stopped, of an old spec, of a removed slot) on any engine; the mesh answers with that version;
 * - the deployed revision is the last good commit; no good commit recorded as failed, no bad one
 *   recorded as good;
 * - history: one entry per rollout, no entry recorded twice.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HistoryEntry, OperatorState } from '../../src/operator/state-store.js';
import { getOnce } from '../../test/helpers/load-loop.js';
import type { SoakCluster } from './cluster.js';
import type { CommitLog } from './faults.js';
import { bodyOf, describeVariant, NAMESPACE, SERVICE } from './service.js';

const short = (revision: string | undefined | null): string => (revision ?? '-').slice(0, 12);

/** What is wrong with what runs now; empty once converged on the last good commit. */
export async function replicaProblems(cluster: SoakCluster, commits: CommitLog): Promise<string[]> {
  const problems: string[] = [];
  const expected = commits.lastGood.revision;
  const status = await cluster.status().catch((error: Error) => error);
  if (status instanceof Error) return [`status: ${status.message}`];
  const ready = new Set(status.nodes.filter((n) => n.status === 'ready').map((n) => n.name));
  for (const engine of cluster.engines) {
    if (!ready.has(engine.node)) problems.push(`node ${engine.node} is not ready`);
  }
  if (status.deployed?.revision !== expected) {
    problems.push(
      `deployed revision ${short(status.deployed?.revision)}, the last good commit is ${short(expected)}`,
    );
  }
  if (status.converged !== true) problems.push(`berth status: converged ${String(status.converged)}`);

  const slots = new Map<string, string[]>();
  const hashes = new Set<string>();
  let running = 0;
  for (const engine of cluster.engines) {
    const containers = await engine.docker
      .listContainers({ all: true, filters: { label: ['berth.managed=true'] } })
      .catch((error: Error) => error);
    if (containers instanceof Error) {
      problems.push(`engine ${engine.node} does not answer: ${containers.message}`);
      continue;
    }
    for (const c of containers) {
      const label = (key: string): string => c.Labels[`berth.${key}`] ?? '';
      const name = `${engine.node}/${(c.Names[0] ?? c.Id).replace(/^\//, '')}`;
      if (label('namespace') !== NAMESPACE || label('service') !== SERVICE) {
        problems.push(`leftover ${name}: ${label('namespace')}/${label('service')}`);
        continue;
      }
      if (c.State !== 'running') problems.push(`leftover ${name}: ${c.State}`);
      if (!ready.has(engine.node)) problems.push(`${name} on a node that is not ready`);
      if (label('revision') !== expected) problems.push(`${name} is of revision ${short(label('revision'))}`);
      if (label('node') !== engine.node) problems.push(`${name} is labelled for node ${label('node')}`);
      if (c.State !== 'running') continue;
      running++;
      hashes.add(label('spec-hash'));
      slots.set(label('slot'), [...(slots.get(label('slot')) ?? []), name]);
    }
  }
  if (running !== commits.shape.replicas) {
    problems.push(`${running} replicas running, ${commits.shape.replicas} desired`);
  }
  if (hashes.size > 1) problems.push(`replicas of ${hashes.size} spec hashes: ${[...hashes].join(', ')}`);
  for (const [slot, names] of slots) {
    if (names.length > 1) problems.push(`slot ${slot} runs ${names.length} times: ${names.join(', ')}`);
  }
  if (problems.length === 0) problems.push(...(await meshProblems(cluster, commits)));
  return problems;
}

/** Every node's published port answers with the last good version. */
async function meshProblems(cluster: SoakCluster, commits: CommitLog): Promise<string[]> {
  const body = bodyOf(commits.lastGood.variant);
  const problems: string[] = [];
  for (const engine of cluster.engines) {
    const answer = await getOnce(engine.address, cluster.published, 2000).catch((error: Error) => error);
    if (answer instanceof Error) problems.push(`the mesh on ${engine.node}: ${answer.message}`);
    else if (answer.status !== 200 || answer.body !== body) {
      problems.push(`the mesh on ${engine.node} answers ${answer.status} "${answer.body}", not "${body}"`);
    }
  }
  return problems;
}

async function readState(stateDir: string): Promise<OperatorState> {
  return JSON.parse(await readFile(join(stateDir, 'state.json'), 'utf8')) as OperatorState;
}

export async function readHistory(stateDir: string): Promise<HistoryEntry[]> {
  const text = await readFile(join(stateDir, 'history.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as HistoryEntry);
}

/** Good commits recorded as failed (an infrastructure fault blamed on a commit), bad ones as good. */
export async function blameProblems(stateDir: string, commits: CommitLog): Promise<string[]> {
  const state = await readState(stateDir);
  const problems: string[] = [];
  for (const good of commits.good) {
    const failed = state.failed[good.revision];
    if (failed) problems.push(`good commit ${short(good.revision)} recorded as failed: ${failed.reason}`);
  }
  for (const bad of commits.bad) {
    if (state.lastGood?.revision === bad.revision) {
      problems.push(`bad commit ${short(bad.revision)} (${bad.kind}) recorded as the last good revision`);
    }
  }
  return problems;
}

/** What the operator recorded for each commit of the soak: failed (and why), the last good, or nothing. */
export async function commitRecords(stateDir: string, commits: CommitLog): Promise<string[]> {
  const state = await readState(stateDir);
  const all = [
    ...commits.good.map((c) => ({ revision: c.revision, what: `good ${describeVariant(c.variant)}` })),
    ...commits.bad.map((c) => ({ revision: c.revision, what: `bad ${c.kind}` })),
  ];
  return all.map(({ revision, what }) => {
    const failed = state.failed[revision];
    const recorded = failed
      ? `failed (${failed.code ?? '-'}): ${failed.reason}`
      : state.lastGood?.revision === revision
        ? 'the last good revision'
        : 'not failed';
    return `${short(revision)} ${what}: ${recorded}`;
  });
}

export interface HistoryFindings {
  entries: number;
  byOutcome: Map<string, number>;
  /** Entries recorded twice: the same revision, service and outcome in sequence with the same replica changes. */
  duplicates: string[];
  /** The same revision, service and outcome in sequence but other replicas: a second rollout (a repair). */
  repeats: string[];
  /** Every entry that is not a success, with its reason. */
  unsuccessful: string[];
}

/**
 * One entry per rollout. Per service, an entry that repeats the one before it (revision, outcome,
 * rollback origin, change, and the replicas started and removed) is the same rollout recorded
 * twice. The same revision and outcome with other replicas is a second rollout of that revision,
 * as after a lost node (listed, not failed).
 */
export async function historyFindings(stateDir: string): Promise<HistoryFindings> {
  const entries = await readHistory(stateDir);
  const byOutcome = new Map<string, number>();
  const last = new Map<string, HistoryEntry>();
  const duplicates: string[] = [];
  const repeats: string[] = [];
  const unsuccessful = entries
    .filter((e) => e.outcome !== 'succeeded' || e.rolledBackFrom !== undefined)
    .map(
      (e) =>
        `${e.at} ${short(e.revision)} ${e.outcome} (${e.change})` +
        `${e.rolledBackFrom ? ` rolling back ${short(e.rolledBackFrom)}` : ''}: ${e.reason ?? '-'}`,
    );
  const replicas = (e: HistoryEntry): string =>
    JSON.stringify([
      e.started.map((r) => `${r.node}/${r.name}`).sort(),
      e.removed.map((r) => `${r.node}/${r.name}`).sort(),
    ]);
  for (const e of entries) {
    byOutcome.set(e.outcome, (byOutcome.get(e.outcome) ?? 0) + 1);
    const service = e.service ?? '(revision)';
    const before = last.get(service);
    last.set(service, e);
    if (!before || before.revision !== e.revision || before.outcome !== e.outcome) continue;
    if (before.rolledBackFrom !== e.rolledBackFrom) continue;
    const what = `${service} ${short(e.revision)} ${e.outcome} (${e.change}) at ${before.at} and ${e.at}`;
    if (before.change === e.change && replicas(before) === replicas(e)) duplicates.push(what);
    else repeats.push(what);
  }
  return { entries: entries.length, byOutcome, duplicates, repeats, unsuccessful };
}
