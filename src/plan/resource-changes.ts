/**
 * What a revision changes in the Namespaces, Configs, Secrets and Notifiers themselves, for reviewers: which
 * keys were added, removed or changed, a unified diff of each changed Config entry, and the
 * services that roll because of it. A Secret only ever says which keys changed: its values are
 * ciphertext, and a diff of ciphertext tells a reviewer nothing but its length. A Notifier says
 * which of its fields changed, and how; its URL lives in a Secret and is never read here.
 *
 * Pure, and for reading only: a plan's execution never looks at it.
 */
import { formatPatch, structuredPatch } from 'diff';
import type {
  ConfigSpec,
  DesiredState,
  NamespaceSpec,
  NotifierSpec,
  SecretSpec,
  ServiceSpec,
} from '../manifests/types.js';
import { compareStrings, serviceKey } from './replica-name.js';
import type { ServicePlan } from './types.js';

export interface KeyChange {
  key: string;
  change: 'added' | 'removed' | 'changed';
  /** Unified diff of a Config entry's text (`---`/`+++` headers, `@@` hunks); never for a Secret. */
  diff?: string;
}

export interface ResourceChange {
  kind: 'Namespace' | 'Config' | 'Secret' | 'Notifier';
  /** Null for a Namespace. */
  namespace: string | null;
  name: string;
  change: 'create' | 'update' | 'remove';
  keys: KeyChange[];
  /** Labels of a Namespace that changed, as `key: from -> to`. */
  labels?: { key: string; from: string | null; to: string | null }[];
  /** Services (`namespace/name`) that use it and are updated by this plan. */
  rolls: string[];
}

/** A Config entry over this size is compared by its digest only: a plan stays readable. */
const MAX_DIFF_INPUT_CHARS = 256 * 1024;
/** Lines of one entry's diff shown; the rest is summarised. */
const MAX_DIFF_LINES = 200;

export function computeResourceChanges(
  before: DesiredState,
  after: DesiredState,
  services: readonly ServicePlan[],
): ResourceChange[] {
  const updated = new Set(
    services.filter((s) => s.change === 'update').map((s) => serviceKey(s.namespace, s.name)),
  );
  const users = (kind: 'Config' | 'Secret', namespace: string, name: string): string[] =>
    after.services
      .filter(
        (s) =>
          s.namespace === namespace && uses(s, kind, name) && updated.has(serviceKey(s.namespace, s.name)),
      )
      .map((s) => serviceKey(s.namespace, s.name))
      .sort(compareStrings);
  const changes = [
    ...namespaceChanges(before.namespaces, after.namespaces),
    ...dataChanges('Config', before.configs, after.configs, users),
    ...dataChanges('Secret', before.secrets, after.secrets, users),
    ...notifierChanges(before.notifiers ?? [], after.notifiers ?? []),
  ];
  return changes;
}

function uses(service: ServiceSpec, kind: 'Config' | 'Secret', name: string): boolean {
  if (kind === 'Secret') return service.secrets.some((m) => m.source === name);
  return service.configs.some((m) => m.source === name) || service.envFrom.some((e) => e.config === name);
}

function namespaceChanges(before: NamespaceSpec[], after: NamespaceSpec[]): ResourceChange[] {
  const old = new Map(before.map((n) => [n.name, n]));
  const now = new Map(after.map((n) => [n.name, n]));
  const out: ResourceChange[] = [];
  for (const name of [...new Set([...old.keys(), ...now.keys()])].sort(compareStrings)) {
    const a = old.get(name);
    const b = now.get(name);
    const keys = [...new Set([...Object.keys(a?.labels ?? {}), ...Object.keys(b?.labels ?? {})])].sort(
      compareStrings,
    );
    const labels = keys
      .map((key) => ({ key, from: a?.labels[key] ?? null, to: b?.labels[key] ?? null }))
      .filter((l) => l.from !== l.to);
    if (a !== undefined && b !== undefined && labels.length === 0) continue;
    const change = a === undefined ? 'create' : b === undefined ? 'remove' : 'update';
    out.push({ kind: 'Namespace', namespace: null, name, change, keys: [], labels, rolls: [] });
  }
  return out;
}

/** Each changed field as a key `type: slack -> discord`: a Notifier has no data, only these three. */
function notifierChanges(before: NotifierSpec[], after: NotifierSpec[]): ResourceChange[] {
  const id = (r: NotifierSpec): string => `${r.namespace}/${r.name}`;
  const fields = (r: NotifierSpec | undefined): Record<string, string> =>
    r === undefined
      ? {}
      : {
          type: r.type,
          urlFrom: `secret ${r.urlFrom.secret} key ${r.urlFrom.key}`,
          events: r.events.join(', '),
        };
  const old = new Map(before.map((r) => [id(r), r]));
  const now = new Map(after.map((r) => [id(r), r]));
  const out: ResourceChange[] = [];
  for (const key of [...new Set([...old.keys(), ...now.keys()])].sort(compareStrings)) {
    const a = old.get(key);
    const b = now.get(key);
    const from = fields(a);
    const to = fields(b);
    const keys: KeyChange[] = Object.keys({ ...from, ...to })
      .filter((field) => from[field] !== to[field])
      .map((field) => ({
        key:
          a === undefined || b === undefined
            ? `${field}: ${to[field] ?? from[field]}`
            : `${field}: ${from[field]} -> ${to[field]}`,
        change: a === undefined ? 'added' : b === undefined ? 'removed' : 'changed',
      }));
    if (a !== undefined && b !== undefined && keys.length === 0) continue;
    const { namespace, name } = (b ?? a)!;
    const change = a === undefined ? 'create' : b === undefined ? 'remove' : 'update';
    out.push({ kind: 'Notifier', namespace, name, change, keys, rolls: [] });
  }
  return out;
}

function dataChanges(
  kind: 'Config' | 'Secret',
  before: (ConfigSpec | SecretSpec)[],
  after: (ConfigSpec | SecretSpec)[],
  users: (kind: 'Config' | 'Secret', namespace: string, name: string) => string[],
): ResourceChange[] {
  const id = (r: { namespace: string; name: string }): string => `${r.namespace}/${r.name}`;
  const old = new Map(before.map((r) => [id(r), r]));
  const now = new Map(after.map((r) => [id(r), r]));
  const out: ResourceChange[] = [];
  for (const key of [...new Set([...old.keys(), ...now.keys()])].sort(compareStrings)) {
    const a = old.get(key);
    const b = now.get(key);
    const keys = keyChanges(kind, key, a?.data ?? {}, b?.data ?? {});
    if (a !== undefined && b !== undefined && keys.length === 0) continue;
    const { namespace, name } = (b ?? a)!;
    const change = a === undefined ? 'create' : b === undefined ? 'remove' : 'update';
    out.push({
      kind,
      namespace,
      name,
      change,
      keys,
      rolls: b === undefined ? [] : users(kind, namespace, name),
    });
  }
  return out;
}

function keyChanges(
  kind: 'Config' | 'Secret',
  resource: string,
  before: Record<string, string>,
  after: Record<string, string>,
): KeyChange[] {
  const out: KeyChange[] = [];
  for (const key of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort(compareStrings)) {
    const a = before[key];
    const b = after[key];
    if (a === b) continue;
    const change = a === undefined ? 'added' : b === undefined ? 'removed' : 'changed';
    out.push(
      kind === 'Secret'
        ? { key, change }
        : { key, change, diff: unifiedDiff(`${resource}/${key}`, a ?? '', b ?? '') },
    );
  }
  return out;
}

function unifiedDiff(label: string, before: string, after: string): string {
  if (before.length > MAX_DIFF_INPUT_CHARS || after.length > MAX_DIFF_INPUT_CHARS)
    return `(not compared line by line: over ${MAX_DIFF_INPUT_CHARS / 1024} KiB)\n`;
  const patch = structuredPatch(`a/${label}`, `b/${label}`, before, after, undefined, undefined, {
    context: 3,
  });
  // formatPatch writes git's hunk headers (`@@ -0,0 +1,2 @@` for an empty side); its `===` rule goes.
  const lines = formatPatch(patch)
    .split('\n')
    .filter((line, i) => !(i === 0 && line.startsWith('===')));
  if (lines.at(-1) === '') lines.pop();
  if (lines.length > MAX_DIFF_LINES + 2) {
    const hidden = lines.length - MAX_DIFF_LINES - 2;
    return `${lines.slice(0, MAX_DIFF_LINES + 2).join('\n')}\n… ${hidden} more line${hidden === 1 ? '' : 's'}\n`;
  }
  return `${lines.join('\n')}\n`;
}
