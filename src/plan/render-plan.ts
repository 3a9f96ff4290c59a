import type { FieldChange, Plan, ReplicaStep, ServicePlan } from './types.js';

/** Plans as people read them: terminal text and Markdown for a pull-request comment. */

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

/** Secret digests are hashes of ciphertext; still, a plan only ever says that a secret changed. */
function redact(change: FieldChange): FieldChange {
  if (change.path.startsWith('secrets'))
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

export function summaryLine(plan: Plan): string {
  const changed = plan.services.filter((s) => s.change !== 'unchanged');
  if (changed.length === 0) return `No changes: the cluster matches ${short(plan.revision)}.`;
  const by = (c: ServicePlan['change']): number => changed.filter((s) => s.change === c).length;
  const parts = [
    by('create') && `${by('create')} to create`,
    by('update') && `${by('update')} to update`,
    by('scale') && `${by('scale')} to scale`,
    by('repair') && `${by('repair')} to repair`,
    by('remove') && `${by('remove')} to remove`,
  ].filter(Boolean);
  return `Plan for ${short(plan.revision)}: ${parts.join(', ')}; ${plan.services.length - changed.length} unchanged.`;
}

export function renderPlanText(plan: Plan, options: { verbose?: boolean } = {}): string {
  const lines: string[] = [summaryLine(plan)];
  for (const s of plan.services) {
    if (s.change === 'unchanged' && !options.verbose && s.pending.length === 0) continue;
    const c = counts(s);
    lines.push('');
    lines.push(
      `${symbols[s.change]} ${s.namespace}/${s.name}: ${s.change} (${s.currentReplicas} -> ${s.desiredReplicas} replicas; ` +
        `${c.create} create, ${c.replace} replace, ${c.remove} remove; ${s.batches.length} batch${s.batches.length === 1 ? '' : 'es'})`,
    );
    for (const f of s.fieldChanges.map(redact))
      lines.push(`    ${f.path}: ${formatValue(f.from)} -> ${formatValue(f.to)}`);
    s.batches.forEach((batch, i) => {
      for (const step of batch) lines.push(`    [${i + 1}] ${stepText(step)}`);
    });
    for (const p of s.pending) lines.push(`    pending slot ${p.slot}: ${p.reason}`);
  }
  return `${lines.join('\n')}\n`;
}

function mdCell(value: string): string {
  return value.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function renderPlanMarkdown(plan: Plan): string {
  const lines: string[] = [
    `### berth plan for \`${short(plan.revision)}\``,
    '',
    `**${summaryLine(plan)}**`,
    '',
  ];
  const changed = plan.services.filter((s) => s.change !== 'unchanged' || s.pending.length > 0);
  if (changed.length > 0) {
    lines.push(
      '| | service | change | replicas | create | replace | remove |',
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
    if (s.fieldChanges.length === 0 && s.batches.length === 0 && s.pending.length === 0) continue;
    lines.push('', `<details><summary><code>${s.namespace}/${s.name}</code>: ${s.change}</summary>`, '');
    if (s.fieldChanges.length > 0) {
      lines.push('| field | from | to |', '|---|---|---|');
      for (const f of s.fieldChanges.map(redact)) {
        lines.push(
          `| \`${mdCell(f.path)}\` | ${mdCell(formatValue(f.from))} | ${mdCell(formatValue(f.to))} |`,
        );
      }
      lines.push('');
    }
    s.batches.forEach((batch, i) => {
      for (const step of batch) lines.push(`- batch ${i + 1}: ${stepText(step)}`);
    });
    for (const p of s.pending) lines.push(`- pending slot ${p.slot}: ${p.reason}`);
    lines.push('', '</details>');
  }
  return `${lines.join('\n')}\n`;
}

/** The stable machine format: the plan object itself, with secret fields redacted. */
export function renderPlanJson(plan: Plan): string {
  const redacted: Plan = {
    ...plan,
    services: plan.services.map((s) => ({ ...s, fieldChanges: s.fieldChanges.map(redact) })),
  };
  return `${JSON.stringify(redacted, null, 2)}\n`;
}
