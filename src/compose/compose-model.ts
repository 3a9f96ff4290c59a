/**
 * One compose file as docker compose reads it: parsed (one YAML document), every string
 * interpolated, YAML merge keys applied; and how files merge (later ones override earlier ones).
 */
import { readFile } from 'node:fs/promises';
import { BerthError } from '../core/errors.js';
import type { FieldPath } from '../manifests/field-path.js';
import { parseManifestFile, type ParsedDocument } from '../manifests/parse.js';
import { interpolate, type VariableLookup } from './interpolate.js';

const MAX_COMPOSE_FILE_BYTES = 4 * 1024 * 1024;

export async function parseComposeFile(file: string): Promise<ParsedDocument> {
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

export type InterpolationProblem = { error?: string; unset?: string[] };

/** Interpolates every string value (never keys, as compose); reports by path. */
export function interpolateTree(
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
export function applyMergeKeys(value: unknown): unknown {
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

export function mergeCompose(base: unknown, override: unknown, path: string[]): Record<string, unknown> {
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

export function existingDepth(value: unknown, path: FieldPath): number {
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

/** A compose file as loaded: where it is, its YAML (for lines) and its interpolated value. */
export interface LoadedFile {
  /** The file as named (in messages). */
  display: string;
  document: ParsedDocument;
  value: Record<string, unknown>;
}

/** What loading the files of one project gathers: interpolation errors and unset variables. */
export interface LoadProblems {
  errors: string[];
  unsetVariables: { name: string; path: FieldPath }[];
}

/** Parses, interpolates (with `lookup`) and applies the merge keys of one compose file. */
export async function loadComposeFile(
  file: string,
  lookup: VariableLookup,
  problems: LoadProblems,
): Promise<LoadedFile> {
  const document = await parseComposeFile(file);
  const value = interpolateTree(document.value, [], lookup, (path, problem) => {
    if (problem.error !== undefined)
      problems.errors.push(`${file}:${document.locate(path, 'value').line}: ${problem.error}`);
    for (const name of problem.unset ?? []) problems.unsetVariables.push({ name, path });
  });
  if (!isRecord(value)) throw new BerthError('ERR_BAD_REQUEST', `${file}: not a compose file (a mapping)`);
  return { display: file, document, value: applyMergeKeys(value) as Record<string, unknown> };
}
