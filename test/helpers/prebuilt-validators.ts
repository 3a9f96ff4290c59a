/**
 * For the tests that hold the validators built ahead (src/core/prebuilt-validators.ts) against
 * the ones ajv compiles at run time: a built module imported as dist/ would import it, and the
 * same values broken in many ways.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Imports `source` (a built validators module) from a scratch directory inside the project, where
 * it finds ajv's runtime helpers as it does in dist/; the directory is removed at once.
 */
export async function importBuiltModule(source: string): Promise<Record<string, unknown>> {
  const cache = join(root, 'node_modules', '.cache');
  await mkdir(cache, { recursive: true });
  const dir = await mkdtemp(join(cache, 'berth-validators-'));
  try {
    await writeFile(join(dir, 'package.json'), '{"type":"module"}');
    await writeFile(join(dir, 'validators.js'), source);
    return (await import(join(dir, 'validators.js'))) as Record<string, unknown>;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `value` broken at each of its places in each of a few ways (a wrong type, gone, an extra field). */
export function* broken(
  value: unknown,
  replace: (next: unknown) => unknown = (next) => next,
): Generator<unknown> {
  for (const wrong of [null, 7, 'x', [], {}, -1.5, true]) yield replace(wrong);
  if (Array.isArray(value)) {
    const items = value as unknown[];
    for (const [i, item] of items.entries())
      yield* broken(item, (next) => replace(items.map((old, j) => (j === i ? next : old))));
    yield replace([...items, ...items]);
  } else if (value !== null && typeof value === 'object') {
    const fields = value as Record<string, unknown>;
    yield replace({ ...fields, notAField: 1 });
    for (const key of Object.keys(fields)) {
      const without = { ...fields };
      delete without[key];
      yield replace(without);
      yield* broken(fields[key], (next) => replace({ ...fields, [key]: next }));
    }
  }
}
