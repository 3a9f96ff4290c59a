/**
 * `extends:` as docker compose resolves it: a service starts from another service, of the same
 * file (`extends: base` or `{ service: base }`) or of another file (`{ file, service }`, relative
 * to the extending file), and its own fields are merged over the base's by the rules of override
 * files. Chains resolve; a cycle or a missing base is an error.
 */
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { VariableLookup } from './interpolate.js';
import {
  isRecord,
  loadComposeFile,
  mergeCompose,
  type LoadedFile,
  type LoadProblems,
} from './compose-model.js';
import { rebaseServicePaths } from './compose-paths.js';

interface ExtendsContext {
  lookup: VariableLookup;
  problems: LoadProblems;
  /** Files read for `extends.file`, by absolute path: each is read once. */
  files: Map<string, Promise<LoadedFile | string>>;
}

/** Replaces every service of `file` that extends another with the merged result. */
export async function resolveExtends(
  file: LoadedFile,
  lookup: VariableLookup,
  problems: LoadProblems,
): Promise<void> {
  const services = file.value['services'];
  if (!isRecord(services) || !Object.values(services).some((s) => isRecord(s) && 'extends' in s)) return;
  const ctx: ExtendsContext = {
    lookup,
    problems,
    files: new Map([[resolve(file.display), Promise.resolve(file)]]),
  };
  const resolved: Record<string, unknown> = {};
  for (const name of Object.keys(services)) resolved[name] = await extendedService(file, name, ctx, []);
  file.value = { ...file.value, services: resolved };
}

function reference(value: unknown): { service: string; file?: string } | null {
  if (typeof value === 'string') return { service: value };
  if (!isRecord(value) || typeof value['service'] !== 'string') return null;
  if (value['file'] === undefined) return { service: value['service'] };
  return typeof value['file'] === 'string' ? { service: value['service'], file: value['file'] } : null;
}

function withoutExtends(service: Record<string, unknown>): Record<string, unknown> {
  const rest = { ...service };
  delete rest['extends'];
  return rest;
}

function readOnce(ctx: ExtendsContext, display: string): Promise<LoadedFile | string> {
  const key = resolve(display);
  let loading = ctx.files.get(key);
  if (loading === undefined) {
    loading = loadComposeFile(display, ctx.lookup, ctx.problems).catch((error: unknown) =>
      error instanceof Error ? error.message : String(error),
    );
    ctx.files.set(key, loading);
  }
  return loading;
}

/** Service `name` of `file` with its extends (and its base's) resolved; `chain` catches cycles. */
async function extendedService(
  file: LoadedFile,
  name: string,
  ctx: ExtendsContext,
  chain: string[],
): Promise<unknown> {
  const services = file.value['services'];
  const service = isRecord(services) ? services[name] : undefined;
  if (!isRecord(service) || service['extends'] === undefined) return service;
  const line = file.document.locate(['services', name, 'extends'], 'value').line;
  const fail = (why: string): Record<string, unknown> => {
    ctx.problems.errors.push(`${file.display}:${line}: services.${name}.extends: ${why}`);
    return withoutExtends(service);
  };
  const ref = reference(service['extends']);
  if (ref === null) return fail('must be a service name or { service, file }');
  const key = `${resolve(file.display)}#${name}`;
  if (chain.includes(key))
    return fail(`a cycle: ${[...chain, key].map((k) => k.split('#')[1]).join(' -> ')}`);
  let baseFile = file;
  if (ref.file !== undefined) {
    const loaded = await readOnce(
      ctx,
      isAbsolute(ref.file) ? ref.file : join(dirname(file.display), ref.file),
    );
    if (typeof loaded === 'string') return fail(loaded);
    baseFile = loaded;
  }
  const baseServices = baseFile.value['services'];
  if (!isRecord(baseServices) || !isRecord(baseServices[ref.service]))
    return fail(`no service ${ref.service} in ${ref.file ?? 'this file'}`);
  const base = rebaseServicePaths(
    await extendedService(baseFile, ref.service, ctx, [...chain, key]),
    dirname(resolve(baseFile.display)),
    dirname(resolve(file.display)),
  );
  const merged = mergeCompose(
    { services: { [name]: base } },
    { services: { [name]: withoutExtends(service) } },
    [],
  );
  return (merged['services'] as Record<string, unknown>)[name];
}
