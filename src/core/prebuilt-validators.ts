/**
 * JSON Schema validators compiled once, when berth is built, instead of in every process that
 * validates. Compiling berth's manifest schemas with ajv takes about 0.2 s of CPU and loads ajv's
 * compiler (some 85 modules); the manifest loader thread did it again each time it started, on a
 * rollout's way to its first start. The build (`npm run build`) writes each set as an ES module
 * of plain functions (ajv's standalone code) next to the module that uses it; run from source,
 * or when that module is missing or was built from other schemas, the same options compile the
 * same validators at run time. A stamp of the schemas' content tells a current module from a
 * stale one.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Ajv, Options, ValidateFunction } from 'ajv';

const require = createRequire(import.meta.url);

/** An ajv instance with `options` and, for the build, the option that keeps its code's source. */
export function createAjv(options: Options, forBuild: boolean): Ajv {
  // Required here, not imported: a process that uses the built validators never loads ajv's compiler.
  const { Ajv: AjvClass } = require('ajv') as typeof import('ajv');
  return new AjvClass(forBuild ? { ...options, code: { source: true, esm: true } } : options);
}

/** A stamp of what validators were compiled from (schemas, options): a change makes a new one. */
export function contentStamp(parts: readonly unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
}

/** A JavaScript name for a schema id (an export of the built module). */
export function exportName(id: string): string {
  return `v_${id.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/**
 * The ES module of the validators of `ids`, registered in `ajv` (made with `forBuild`), each
 * exported under exportName(id), with `stamp` exported beside them.
 */
export function prebuiltValidatorsModule(ajv: Ajv, ids: readonly string[], stamp: string): string {
  const { default: standaloneCode } = require('ajv/dist/standalone/index.js') as {
    default: (ajv: Ajv, refs: Record<string, string>) => string;
  };
  const code = standaloneCode(ajv, Object.fromEntries(ids.map((id) => [exportName(id), id])));
  // ajv writes its runtime helpers (deep equality, string length) as require() even in an ES
  // module: the module makes itself the require it calls (CommonJS resolution, as ajv means).
  const head = `import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);`;
  return `${head}\nexport const stamp = ${JSON.stringify(stamp)};\n${code.replace(/^"use strict";/, '')}\n`;
}

/**
 * The validators of `ids` from the built module at `url` when it holds them for `stamp`, else
 * null (run from source, built without it, or built from other schemas).
 */
export async function loadPrebuiltValidators(
  url: URL,
  ids: readonly string[],
  stamp: string,
): Promise<Map<string, ValidateFunction> | null> {
  if (!existsSync(url)) return null;
  const built = (await import(url.href)) as Record<string, unknown>;
  if (built['stamp'] !== stamp) return null;
  const validators = new Map<string, ValidateFunction>();
  for (const id of ids) {
    const validate = built[exportName(id)];
    if (typeof validate !== 'function') return null;
    validators.set(id, validate as ValidateFunction);
  }
  return validators;
}
