/**
 * Loading a compose project as docker compose does: the files in order (later ones override
 * earlier ones), `.env` next to the first file with the process environment winning over it,
 * every string interpolated, YAML merge keys (`<<: *defaults`) applied, and the project name
 * (COMPOSE_PROJECT_NAME, top-level `name:`, else the directory). Each value keeps the file and
 * line it came from, so every message can say `file:line`.
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { BerthError } from '../core/errors.js';
import type { FieldPath } from '../manifests/field-path.js';
import { parseManifestFile, type ParsedDocument } from '../manifests/parse.js';
import { parseDotEnv } from './dotenv.js';
import { interpolate, type VariableLookup } from './interpolate.js';

const MAX_COMPOSE_FILE_BYTES = 4 * 1024 * 1024;

export interface ComposeLocation {
  file: string;
  line: number;
}

export interface ComposeProject {
  name: string;
  /** The project directory: that of the first file; relative paths in any file resolve from it. */
  dir: string;
  model: Record<string, unknown>;
  /** Variables of the process and the `.env` file, the process winning. */
  lookup: VariableLookup;
  locate(path: FieldPath): ComposeLocation;
  /** The text a scalar was written as (`0440`, which YAML 1.2 reads as decimal 440). */
  scalarSource(path: FieldPath): string | undefined;
  /** Variables used but set nowhere: compose substitutes "" and warns, so do we. */
  unsetVariables: { name: string; path: FieldPath }[];
}

interface LoadedFile {
  display: string;
  document: ParsedDocument;
  value: Record<string, unknown>;
}

export async function loadComposeProject(
  files: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<ComposeProject> {
  if (files.length === 0) throw new BerthError('ERR_BAD_REQUEST', 'no compose file given');
  const dir = dirname(resolve(files[0] ?? '.'));
  const dotEnv = await readDotEnv(join(dir, '.env'), env);
  const lookup: VariableLookup = (name) => env[name] ?? dotEnv.get(name);
  const loaded: LoadedFile[] = [];
  const errors: string[] = [];
  const unsetVariables: ComposeProject['unsetVariables'] = [];
  for (const file of files) {
    const document = await parseComposeFile(file);
    const at = (path: FieldPath): ComposeLocation => ({ file, line: document.locate(path, 'value').line });
    const value = interpolateTree(document.value, [], lookup, (path, problem) => {
      if (problem.error !== undefined) errors.push(`${file}:${at(path).line}: ${problem.error}`);
      for (const name of problem.unset ?? []) unsetVariables.push({ name, path });
    });
    if (!isRecord(value)) throw new BerthError('ERR_BAD_REQUEST', `${file}: not a compose file (a mapping)`);
    loaded.push({ display: file, document, value: applyMergeKeys(value) as Record<string, unknown> });
  }
  if (errors.length > 0) throw new BerthError('ERR_BAD_REQUEST', errors.join('\n'));
  const model = loaded.reduce<Record<string, unknown>>(
    (merged, file) => mergeCompose(merged, file.value, []),
    {},
  );
  const named = typeof model['name'] === 'string' ? model['name'] : undefined;
  const name = normaliseProjectName(lookup('COMPOSE_PROJECT_NAME') ?? named ?? basename(dir));
  const holder = (path: FieldPath): LoadedFile => {
    let best = loaded[loaded.length - 1] as LoadedFile;
    let bestDepth = -1;
    for (const file of loaded) {
      const depth = existingDepth(file.value, path);
      if (depth >= bestDepth) [best, bestDepth] = [file, depth];
    }
    return best;
  };
  return {
    name,
    dir,
    model,
    lookup,
    unsetVariables,
    locate: (path) => {
      const file = holder(path);
      return { file: file.display, line: file.document.locate(path, 'value').line };
    },
    scalarSource: (path) => holder(path).document.scalarSource(path),
  };
}

/** Compose's project name rule: lowercase, only a-z 0-9 _ -, starting with a letter or digit. */
export function normaliseProjectName(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '')
    .replace(/^[^a-z0-9]+/, '');
}

async function readDotEnv(path: string, env: NodeJS.ProcessEnv): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new BerthError('ERR_BAD_REQUEST', `cannot read ${path}: ${(error as Error).message}`);
  }
  const parsed = parseDotEnv(text, (name) => env[name]);
  if (parsed.problems.length > 0) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      parsed.problems.map((problem) => `${path}:${problem.line}: ${problem.message}`).join('\n'),
    );
  }
  return parsed.values;
}

async function parseComposeFile(file: string): Promise<ParsedDocument> {
  let content: Buffer;
  try {
    content = await readFile(file);
  } catch (error) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  const parsed = parseManifestFile({ path: file, content }, MAX_COMPOSE_FILE_BYTES);
  if (parsed.problems.length > 0) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      parsed.problems
        .map((problem) => `${problem.file}:${problem.line}:${problem.col}: ${problem.message}`)
        .join('\n'),
    );
  }
  const [document, extra] = parsed.documents;
  if (document === undefined) throw new BerthError('ERR_BAD_REQUEST', `${file}: empty compose file`);
  if (extra !== undefined) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `${file}:${extra.position.line}: a compose file holds one YAML document`,
    );
  }
  return document;
}

type InterpolationProblem = { error?: string; unset?: string[] };

/** Interpolates every string value (never keys, as compose); reports by path. */
function interpolateTree(
  value: unknown,
  path: (string | number)[],
  lookup: VariableLookup,
  report: (path: FieldPath, problem: InterpolationProblem) => void,
): unknown {
  if (typeof value === 'string') {
    const result = interpolate(value, lookup);
    if (!result.ok) {
      report(path, { error: `${fieldName(path)}: ${result.error}` });
      return value;
    }
    if (result.unset.length > 0) report(path, { unset: result.unset });
    return result.value;
  }
  if (Array.isArray(value))
    return value.map((item, i) => interpolateTree(item, [...path, i], lookup, report));
  if (isRecord(value)) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        key,
        interpolateTree(item, [...path, key], lookup, report),
      ]),
    );
  }
  return value;
}

function fieldName(path: FieldPath): string {
  return path
    .map((segment) => (typeof segment === 'number' ? `[${segment}]` : segment))
    .join('.')
    .replace(/\.\[/g, '[');
}

/** YAML 1.1 merge keys, which compose files use for shared defaults; explicit keys win. */
function applyMergeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(applyMergeKeys);
  if (!isRecord(value)) return value;
  const merged: Record<string, unknown> = {};
  const sources = value['<<'];
  for (const source of Array.isArray(sources) ? sources : sources === undefined ? [] : [sources]) {
    if (isRecord(source)) Object.assign(merged, applyMergeKeys(source));
  }
  for (const [key, item] of Object.entries(value)) {
    if (key !== '<<') merged[key] = applyMergeKeys(item);
  }
  return merged;
}

/** Lists that later files extend rather than replace (compose's merge rules for these fields). */
const APPENDED_LISTS = new Set([
  'ports',
  'expose',
  'volumes',
  'configs',
  'secrets',
  'env_file',
  'cap_add',
  'cap_drop',
  'tmpfs',
  'devices',
  'dns',
  'extra_hosts',
]);
/** Fields written as a list of KEY=VALUE or a mapping; merged as mappings. */
const KEY_VALUE_FIELDS = new Set(['environment', 'labels']);

function mergeCompose(base: unknown, override: unknown, path: string[]): Record<string, unknown> {
  const result: Record<string, unknown> = isRecord(base) ? { ...base } : {};
  if (!isRecord(override)) return result;
  for (const [key, value] of Object.entries(override)) {
    const current = result[key];
    const inService = path[0] === 'services' && path.length === 2;
    if (inService && KEY_VALUE_FIELDS.has(key)) {
      result[key] = { ...keyValueMap(current), ...keyValueMap(value) };
    } else if (inService && APPENDED_LISTS.has(key) && Array.isArray(current) && Array.isArray(value)) {
      const earlier: unknown[] = current;
      result[key] = [
        ...earlier,
        ...(value as unknown[]).filter((item) => !earlier.some((c) => sameJson(c, item))),
      ];
    } else if (isRecord(current) && isRecord(value)) {
      result[key] = mergeCompose(current, value, [...path, key]);
    } else {
      result[key] = value;
    }
  }
  return result;
}

/** `[A=1, B]` or `{A: 1, B: null}` as a mapping; a bare `B` stays null (resolved later). */
export function keyValueMap(value: unknown): Record<string, unknown> {
  if (isRecord(value)) return value;
  if (!Array.isArray(value)) return {};
  const map: Record<string, unknown> = {};
  for (const item of value) {
    const text = String(item);
    const equals = text.indexOf('=');
    if (equals === -1) map[text] = null;
    else map[text.slice(0, equals)] = text.slice(equals + 1);
  }
  return map;
}

function existingDepth(value: unknown, path: FieldPath): number {
  let current = value;
  for (let depth = 0; depth < path.length; depth++) {
    const segment = path[depth] as string | number;
    if (Array.isArray(current) && typeof segment === 'number' && segment < current.length)
      current = current[segment];
    else if (isRecord(current) && Object.hasOwn(current, segment)) current = current[segment];
    else return depth;
  }
  return path.length;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
