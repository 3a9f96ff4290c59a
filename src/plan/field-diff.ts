import type { FieldChange } from './types.js';

/** Leaves of a JSON value as dotted paths (`env.GREETING`, `ports[0].target`). */
function flatten(value: unknown, prefix: string, out: Map<string, unknown>): void {
  if (Array.isArray(value)) {
    if (value.length === 0) out.set(prefix, []);
    value.forEach((item, i) => flatten(item, `${prefix}[${i}]`, out));
  } else if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0 && prefix !== '') out.set(prefix, {});
    for (const [key, v] of entries) flatten(v, prefix === '' ? key : `${prefix}.${key}`, out);
  } else {
    out.set(prefix, value);
  }
}

/** Field-level differences between two spec summaries, sorted by path. */
export function diffFields(from: unknown, to: unknown): FieldChange[] {
  const a = new Map<string, unknown>();
  const b = new Map<string, unknown>();
  flatten(from, '', a);
  flatten(to, '', b);
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort();
  const changes: FieldChange[] = [];
  for (const path of paths) {
    const x = a.has(path) ? a.get(path) : undefined;
    const y = b.has(path) ? b.get(path) : undefined;
    if (JSON.stringify(x) !== JSON.stringify(y)) changes.push({ path, from: x ?? null, to: y ?? null });
  }
  return changes;
}
