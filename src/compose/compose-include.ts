/**
 * Top-level `include:` (Compose Specification): each entry is another compose project loaded on
 * its own (its own directory for relative paths, its own `.env` or `env_file` for variables, the
 * process environment winning) and added to the including file. A service, volume, network,
 * config or secret defined by two of them is an error, as docker compose says.
 */
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { resolveExtends } from './compose-extends.js';
import {
  isRecord,
  loadComposeFile,
  mergeCompose,
  type LoadedFile,
  type LoadProblems,
} from './compose-model.js';
import { rebaseModelPaths } from './compose-paths.js';
import { readEnvFiles } from './dotenv.js';
import type { VariableLookup } from './interpolate.js';

export interface IncludeContext {
  env: NodeJS.ProcessEnv;
  problems: LoadProblems;
}

const RESOURCES = ['services', 'volumes', 'networks', 'configs', 'secrets'];

interface IncludeEntry {
  paths: string[];
  projectDirectory?: string;
  envFiles?: string[];
}

/** A compose file's model with what it includes, and every file read for it. */
export interface ResolvedFile {
  model: Record<string, unknown>;
  /**
   * The file first, then every file it included: their values are each file's own, read only
   * to say which file and line a field came from.
   */
  files: LoadedFile[];
}

/** One compose file with its `extends` and `include` resolved. */
export async function loadResolvedFile(
  path: string,
  lookup: VariableLookup,
  ctx: IncludeContext,
  chain: string[] = [],
): Promise<ResolvedFile> {
  const file = await loadComposeFile(path, lookup, ctx.problems);
  await resolveExtends(file, lookup, ctx.problems);
  return resolveIncludes(file, ctx, [...chain, resolve(path)]);
}

function includeEntry(entry: unknown): IncludeEntry | null {
  if (typeof entry === 'string') return { paths: [entry] };
  if (!isRecord(entry)) return null;
  const strings = (value: unknown): string[] | null =>
    typeof value === 'string'
      ? [value]
      : Array.isArray(value) && value.every((v) => typeof v === 'string')
        ? value
        : null;
  const paths = strings(entry['path']);
  if (paths === null || paths.length === 0) return null;
  const envFiles = entry['env_file'] === undefined ? undefined : strings(entry['env_file']);
  const projectDirectory = entry['project_directory'];
  if (envFiles === null || (projectDirectory !== undefined && typeof projectDirectory !== 'string'))
    return null;
  return {
    paths,
    ...(projectDirectory === undefined ? {} : { projectDirectory }),
    ...(envFiles === undefined ? {} : { envFiles }),
  };
}

/** Loads one include entry: its files merged, paths rebased onto `dir`, its own name dropped. */
async function loadEntry(
  entry: IncludeEntry,
  dir: string,
  ctx: IncludeContext,
  chain: string[],
): Promise<{ model: Record<string, unknown>; files: LoadedFile[] }> {
  const under = (path: string): string => (isAbsolute(path) ? path : join(dir, path));
  const paths = entry.paths.map(under);
  const projectDir =
    entry.projectDirectory === undefined ? dirname(paths[0]!) : under(entry.projectDirectory);
  const envFiles = entry.envFiles?.map(under) ?? [join(projectDir, '.env')];
  const values = await readEnvFiles(envFiles, (name) => ctx.env[name], entry.envFiles !== undefined);
  const lookup: VariableLookup = (name) => ctx.env[name] ?? values.get(name);
  let model: Record<string, unknown> = {};
  const files: LoadedFile[] = [];
  for (const path of paths) {
    const resolved = await loadResolvedFile(path, lookup, ctx, chain);
    files.push(...resolved.files);
    model = mergeCompose(model, resolved.model, []);
  }
  // The included project's name and version say nothing about the including project.
  const resources = { ...model };
  delete resources['name'];
  delete resources['version'];
  return { model: rebaseModelPaths(resources, resolve(projectDir), resolve(dir)), files };
}

/** The file's model with what it includes added (and `include` gone). */
async function resolveIncludes(
  file: LoadedFile,
  ctx: IncludeContext,
  chain: string[],
): Promise<ResolvedFile> {
  const { include: entries, ...own } = file.value;
  if (entries === undefined) return { model: own, files: [file] };
  const at = (index: number | null): string => {
    const path = index === null ? ['include'] : ['include', index];
    return `${file.display}:${file.document.locate(path, 'value').line}: include${index === null ? '' : `[${index}]`}`;
  };
  if (!Array.isArray(entries)) {
    ctx.problems.errors.push(`${at(null)}: must be a list`);
    return { model: own, files: [file] };
  }
  const definedBy = new Map<string, string>();
  for (const kind of RESOURCES)
    for (const name of Object.keys(isRecord(own[kind]) ? own[kind] : {}))
      definedBy.set(`${kind}.${name}`, file.display);
  let merged: Record<string, unknown> = {};
  const files: LoadedFile[] = [file];
  for (const [index, raw] of entries.entries()) {
    const entry = includeEntry(raw);
    if (entry === null) {
      ctx.problems.errors.push(`${at(index)}: must be a path or { path, project_directory, env_file }`);
      continue;
    }
    const first = resolve(dirname(file.display), entry.paths[0]!);
    if (chain.includes(first)) {
      ctx.problems.errors.push(`${at(index)}: ${entry.paths[0]} includes itself (a cycle)`);
      continue;
    }
    const loaded = await loadEntry(entry, dirname(file.display), ctx, chain);
    for (const kind of RESOURCES) {
      for (const name of Object.keys(isRecord(loaded.model[kind]) ? loaded.model[kind] : {})) {
        const earlier = definedBy.get(`${kind}.${name}`);
        if (earlier !== undefined)
          ctx.problems.errors.push(
            `${at(index)}: ${kind}.${name} is defined by ${entry.paths[0]} and by ${earlier}`,
          );
        else definedBy.set(`${kind}.${name}`, entry.paths[0]!);
      }
    }
    merged = mergeCompose(merged, loaded.model, []);
    files.push(...loaded.files);
  }
  return { model: mergeCompose(merged, own, []), files };
}
