import type { PlannedCronJob } from './cronjob-plan.js';
import type { PlannedJob } from './job-plan.js';
import type { ResourceChange } from './resource-changes.js';
import type { FieldChange, Plan, ReplicaStep, ServicePlan } from './types.js';

/**
 * Plans as people and programs read them: terminal text, Markdown for a pull-request comment,
 * and a stable JSON document (its shape is documented in docs/plan-format.md).
 */

/** A reason a revision cannot be applied: a manifest problem (with its position) or a refusal. */
export interface PlanProblem {
  file: string | null;
  line: number | null;
  col: number | null;
  message: string;
}

/** Everything `berth plan` reports: the plan, or the problems that keep the revision from loading. */
export interface PlanReport {
  /** The revision planned. */
  revision: string;
  /** The revision an offline plan compares with (`--against`); null against the live cluster. */
  against: string | null;
  /** Null when the revision does not load (then `problems` says why). */
  plan: Plan | null;
  problems: PlanProblem[];
  /**
   * Namespaces, Configs and Secrets that change, compared with the revision the cluster runs (or
   * `against`); null when there is nothing to compare with (an empty cluster, or a revision that
   * no longer loads). Absent: not computed.
   */
  resources?: ResourceChange[] | null;
  /** The Jobs of the revision, run before the Services that depend on them. Absent: none. */
  jobs?: PlannedJob[];
  /** The CronJobs of the revision, and those it removes. Absent: none. */
  cronJobs?: PlannedCronJob[];
}

const cronJobSymbols: Record<PlannedCronJob['action'], string> = {
  create: '+',
  change: '~',
  remove: '-',
  unchanged: '=',
};

/** One line per CronJob: what happens to it and when it runs next. */
export function cronJobLines(cronJobs: readonly PlannedCronJob[]): string[] {
  if (cronJobs.length === 0) return [];
  return [
    'CronJobs (scheduled by the operator):',
    ...cronJobs.map((c) => {
      const what = c.action === 'change' ? `change (${c.changes.join(', ')})` : c.action;
      const when =
        c.action === 'remove'
          ? '; its runs are removed'
          : c.suspend
            ? `; "${c.schedule}" (${c.timeZone}), suspended`
            : `; "${c.schedule}" (${c.timeZone}), next run ${c.nextRunAt ?? 'never'}`;
      return `${cronJobSymbols[c.action]} cronjob ${c.namespace}/${c.name}: ${what}${when}`;
    }),
  ];
}

const jobSymbols: Record<PlannedJob['action'], string> = { run: '+', unchanged: '=', failed: '!' };
const jobWords: Record<PlannedJob['action'], string> = {
  run: 'will run',
  unchanged: 'unchanged (succeeded at this spec)',
  failed: 'failed at this spec (not run again; change it to run it again)',
};

/** One line per Job, in the order things happen: Jobs first, then what waits for them. */
export function jobLines(jobs: readonly PlannedJob[]): string[] {
  if (jobs.length === 0) return [];
  return [
    'Jobs (run before the Services roll):',
    ...jobs.map((job) => {
      const then = job.before.length === 0 ? '' : `; then ${job.before.join(', ')} roll`;
      return `${jobSymbols[job.action]} job ${job.namespace}/${job.name}: ${jobWords[job.action]}${then}`;
    }),
  ];
}

/** Version of the JSON document; bumped only when a field changes meaning or goes away. */
export const PLAN_FORMAT_VERSION = 1;

const symbols: Record<ServicePlan['change'], string> = {
  create: '+',
  update: '~',
  scale: '~',
  repair: '!',
  remove: '-',
  unchanged: '=',
};

function short(revision: string): string {
  return revision.slice(0, 12);
}

function formatValue(value: unknown): string {
  if (value === null || value === undefined) return '(none)';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function problemText(p: PlanProblem): string {
  return p.file === null ? p.message : `${p.file}:${p.line ?? 0}:${p.col ?? 0}: ${p.message}`;
}

/** Secret digests are hashes of ciphertext; still, a plan only ever says that a secret changed. */
export function redactFieldChange(change: FieldChange): FieldChange {
  if (change.path === 'secrets' || change.path.startsWith('secrets[') || change.path.startsWith('secrets.'))
    return { path: change.path, from: '(secret)', to: '(secret, changed)' };
  return change;
}

function counts(s: ServicePlan): { create: number; replace: number; remove: number } {
  const steps = s.batches.flat();
  return {
    create: steps.filter((x) => x.action === 'create').length,
    replace: steps.filter((x) => x.action === 'replace').length,
    remove: steps.filter((x) => x.action === 'remove').length,
  };
}

function stepText(step: ReplicaStep): string {
  switch (step.action) {
    case 'create':
      return `create ${step.name} on ${step.node}`;
    case 'replace':
      return step.old.name === step.name
        ? `recreate ${step.name} on ${step.node}`
        : `replace ${step.old.name} on ${step.old.node} with ${step.name} on ${step.node}`;
    case 'remove':
      return `remove ${step.old.name} on ${step.old.node} (${step.reason})`;
  }
}

function againstText(report: PlanReport): string {
  return report.against === null ? 'the live cluster' : `\`${short(report.against)}\` (offline, from git)`;
}

export function summaryLine(plan: Plan, against: string | null = null): string {
  const changed = plan.services.filter((s) => s.change !== 'unchanged');
  const base = against === null ? 'the cluster' : short(against);
  if (changed.length === 0) return `No changes: ${base} matches ${short(plan.revision)}.`;
  const by = (c: ServicePlan['change']): number => changed.filter((s) => s.change === c).length;
  const parts = [
    by('create') && `${by('create')} to create`,
    by('update') && `${by('update')} to update`,
    by('scale') && `${by('scale')} to scale`,
    by('repair') && `${by('repair')} to repair`,
    by('remove') && `${by('remove')} to remove`,
  ].filter(Boolean);
  const vs = against === null ? '' : ` against ${short(against)}`;
  return `Plan for ${short(plan.revision)}${vs}: ${parts.join(', ')}; ${plan.services.length - changed.length} unchanged.`;
}

function shown(s: ServicePlan, verbose: boolean): boolean {
  return s.change !== 'unchanged' || s.pending.length > 0 || verbose;
}

export function renderPlanText(report: PlanReport, options: { verbose?: boolean } = {}): string {
  const { plan } = report;
  if (plan === null) {
    return `${short(report.revision)} cannot be applied:\n${report.problems.map((p) => `  ${problemText(p)}`).join('\n')}\n`;
  }
  const lines: string[] = [summaryLine(plan, report.against)];
  if ((report.jobs ?? []).length > 0) lines.push('', ...jobLines(report.jobs ?? []));
  if ((report.cronJobs ?? []).length > 0) lines.push('', ...cronJobLines(report.cronJobs ?? []));
  for (const s of plan.services) {
    if (!shown(s, options.verbose ?? false)) continue;
    const c = counts(s);
    lines.push('');
    lines.push(
      `${symbols[s.change]} ${s.namespace}/${s.name}: ${s.change} (${s.currentReplicas} -> ${s.desiredReplicas} replicas; ` +
        `${c.create} create, ${c.replace} replace, ${c.remove} remove; ${s.batches.length} batch${s.batches.length === 1 ? '' : 'es'})`,
    );
    for (const f of s.fieldChanges.map(redactFieldChange))
      lines.push(`    ${f.path}: ${formatValue(f.from)} -> ${formatValue(f.to)}`);
    s.batches.forEach((batch, i) => {
      for (const step of batch) lines.push(`    [${i + 1}] ${stepText(step)}`);
    });
    for (const p of s.pending) lines.push(`    pending slot ${p.slot}: ${p.reason}`);
    for (const v of s.deleteVolumes ?? [])
      lines.push(`    delete volume ${v.name} on ${v.node} (volumeReclaim: delete)`);
  }
  for (const r of report.resources ?? []) lines.push('', ...resourceText(r));
  return `${lines.join('\n')}\n`;
}

const resourceSymbols: Record<ResourceChange['change'], string> = { create: '+', update: '~', remove: '-' };
const keySymbols = { added: '+', removed: '-', changed: '~' } as const;

function resourceTitle(r: ResourceChange): string {
  const name = r.namespace === null ? r.name : `${r.namespace}/${r.name}`;
  const rolls = r.rolls.length === 0 ? '' : ` (rolls ${r.rolls.join(', ')})`;
  return `${r.kind} ${name}: ${r.change}${rolls}`;
}

function resourceText(r: ResourceChange): string[] {
  const lines = [`${resourceSymbols[r.change]} ${resourceTitle(r)}`];
  for (const l of r.labels ?? [])
    lines.push(`    label ${l.key}: ${l.from ?? '(none)'} -> ${l.to ?? '(none)'}`);
  for (const k of r.keys) {
    lines.push(`    ${keySymbols[k.change]} ${k.key}${r.kind === 'Secret' ? ' (value not shown)' : ''}`);
    if (k.diff !== undefined && k.change === 'changed')
      lines.push(
        ...k.diff
          .trimEnd()
          .split('\n')
          .map((line) => `      ${line}`),
      );
  }
  return lines;
}

/** A code fence longer than any run of backticks in `text`, so the block cannot be closed early. */
function fenceFor(text: string): string {
  const longest = Math.max(2, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  return '`'.repeat(longest + 1);
}

function resourceMarkdown(r: ResourceChange): string[] {
  const lines = ['', `#### ${resourceSymbols[r.change]} ${mdText(resourceTitle(r))}`, ''];
  for (const l of r.labels ?? [])
    lines.push(`- label \`${mdText(l.key)}\`: ${mdCode(l.from ?? '(none)')} → ${mdCode(l.to ?? '(none)')}`);
  for (const k of r.keys) {
    const hidden = r.kind === 'Secret' ? ' (value not shown)' : '';
    lines.push(`- ${k.change} ${mdCode(k.key)}${hidden}`);
    if (k.diff !== undefined && k.change === 'changed') {
      const fence = fenceFor(k.diff);
      lines.push('', `${fence}diff`, k.diff.trimEnd(), fence, '');
    }
  }
  return lines;
}

/** Text for a Markdown table cell: pipes escaped, one line, code-formatted when it can be. */
function mdCode(value: string): string {
  const line = value.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
  return line.includes('`') ? line : `\`${line}\``;
}

function mdText(value: string): string {
  return value.replace(/[\\`*_<>|[\]]/g, (c) => `\\${c}`).replace(/\r?\n/g, ' ');
}

/** A marker CI can look for to update its earlier comment instead of adding a new one. */
export const PLAN_COMMENT_MARKER = '<!-- berth-plan -->';

export function renderPlanMarkdown(report: PlanReport): string {
  const { plan } = report;
  const lines: string[] = [PLAN_COMMENT_MARKER];
  if (plan === null) {
    lines.push(
      `### berth plan: \`${short(report.revision)}\` cannot be applied`,
      '',
      `**${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}** (nothing would change until they are fixed):`,
      '',
      '| file | line | problem |',
      '|---|---|---|',
      ...report.problems.map(
        (p) =>
          `| ${p.file === null ? '' : mdCode(p.file)} | ${p.line === null ? '' : `${p.line}:${p.col ?? 0}`} | ${mdText(p.message)} |`,
      ),
    );
    return `${lines.join('\n')}\n`;
  }
  lines.push(
    `### berth plan: \`${short(plan.revision)}\` against ${againstText(report)}`,
    '',
    `**${summaryLine(plan, report.against)}**`,
  );
  const jobs = jobLines(report.jobs ?? []);
  if (jobs.length > 0)
    lines.push('', `${jobs[0] ?? ''}`, '', ...jobs.slice(1).map((line) => `- ${mdText(line)}`));
  const cronJobs = cronJobLines(report.cronJobs ?? []);
  if (cronJobs.length > 0)
    lines.push('', `${cronJobs[0] ?? ''}`, '', ...cronJobs.slice(1).map((line) => `- ${mdText(line)}`));
  const changed = plan.services.filter((s) => shown(s, false));
  if (changed.length > 0) {
    lines.push(
      '',
      '| | service | change | replicas (up to date → desired) | create | replace | remove |',
      '|---|---|---|---|---|---|---|',
    );
    for (const s of changed) {
      const c = counts(s);
      lines.push(
        `| ${symbols[s.change]} | \`${s.namespace}/${s.name}\` | ${s.change} | ${s.currentReplicas} → ${s.desiredReplicas} | ${c.create} | ${c.replace} | ${c.remove} |`,
      );
    }
  }
  for (const s of changed) {
    lines.push('', `#### ${symbols[s.change]} \`${s.namespace}/${s.name}\`: ${s.change}`, '');
    if (s.fieldChanges.length > 0) {
      lines.push('| field | from | to |', '|---|---|---|');
      for (const f of s.fieldChanges.map(redactFieldChange)) {
        lines.push(`| \`${f.path}\` | ${mdCode(formatValue(f.from))} | ${mdCode(formatValue(f.to))} |`);
      }
    } else if (s.change === 'create') {
      lines.push(`New service: ${s.desiredReplicas} replica${s.desiredReplicas === 1 ? '' : 's'}.`);
    } else if (s.change === 'remove') {
      lines.push(`Removed from git: its ${s.currentReplicas} running replica(s) are stopped and removed.`);
    } else {
      lines.push('No field changes: replicas are repaired toward the same spec.');
    }
    for (const p of s.pending) lines.push('', `- pending slot ${p.slot}: ${mdText(p.reason)}`);
    for (const v of s.deleteVolumes ?? [])
      lines.push('', `- deletes volume \`${v.name}\` on ${mdText(v.node)} (volumeReclaim: delete)`);
    const steps = s.batches.flat().length;
    if (steps > 0) {
      lines.push(
        '',
        `<details><summary>${steps} replica step${steps === 1 ? '' : 's'} in ${s.batches.length} batch${s.batches.length === 1 ? '' : 'es'}</summary>`,
        '',
      );
      s.batches.forEach((batch, i) => {
        for (const step of batch) lines.push(`- batch ${i + 1}: ${mdText(stepText(step))}`);
      });
      lines.push('', '</details>');
    }
  }
  for (const r of report.resources ?? []) lines.push(...resourceMarkdown(r));
  return `${lines.join('\n')}\n`;
}

/** A step as reports show it: the request it carries is for executing the plan, not for reading. */
function withoutRequest(step: ReplicaStep): object {
  if (step.action === 'remove') return step;
  const shown: Partial<Pick<typeof step, 'request'>> & Omit<typeof step, 'request'> = { ...step };
  delete shown.request;
  return shown;
}

/** The stable machine format (docs/plan-format.md): secret fields redacted like everywhere else. */

export function renderPlanJson(report: PlanReport): string {
  const { plan } = report;
  // The report shows what changes; the requests a plan carries for its rollout (and the drain
  // time) are for `berth apply --plan`, whose own file format holds them.
  const services = (plan?.services ?? []).map(({ stopGracePeriodMs: _drain, ...s }) => ({
    ...s,
    fieldChanges: s.fieldChanges.map(redactFieldChange),
    batches: s.batches.map((batch) => batch.map(withoutRequest)),
  }));
  const summary = { create: 0, update: 0, scale: 0, repair: 0, remove: 0, unchanged: 0 };
  for (const s of services) summary[s.change] += 1;
  const document = {
    formatVersion: PLAN_FORMAT_VERSION,
    revision: report.revision,
    against: report.against,
    valid: plan !== null,
    problems: report.problems,
    hasChanges: plan?.hasChanges ?? false,
    summary,
    services,
    resources: report.resources ?? null,
    jobs: report.jobs ?? [],
    cronJobs: report.cronJobs ?? [],
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}
