/**
 * ajv errors -> one human message per problem, with the field path it is about. The wording comes
 * from the schema where it can (`errorMessage`, `patternErrorMessage`, as VS Code shows them) and
 * is built from the keyword otherwise. Values of fields marked `writeOnly` (secret data) are never
 * quoted back.
 */
import type { ErrorObject } from 'ajv';
import { didYouMean } from './did-you-mean.js';
import { atFieldPath, type FieldPath } from './field-path.js';

export interface SchemaViolation {
  path: FieldPath;
  /** Point at the key (unknown or missing fields) or at the value (everything else). */
  at: 'key' | 'value';
  message: string;
}

interface SchemaHints {
  errorMessage?: unknown;
  patternErrorMessage?: unknown;
  writeOnly?: unknown;
  properties?: Record<string, unknown>;
  oneOf?: unknown[];
}

export function describeSchemaErrors(errors: readonly ErrorObject[], data: unknown): SchemaViolation[] {
  // A failing oneOf reports each branch's own failure too; the oneOf's summary says it better.
  const summarised = errors.filter((error) => error.keyword === 'oneOf' || error.keyword === 'anyOf');
  const violations: SchemaViolation[] = [];
  const seen = new Set<string>();
  for (const error of errors) {
    if (error.keyword === 'if' || error.keyword === 'propertyNames') continue;
    if (summarised.some((parent) => parent !== error && error.schemaPath.startsWith(`${parent.schemaPath}/`)))
      continue;
    const violation = describeSchemaError(error, data);
    const identity = `${violation.path.join('\u0000')}\u0001${violation.message}`;
    if (seen.has(identity)) continue;
    seen.add(identity);
    violations.push(violation);
  }
  return violations;
}

function describeSchemaError(error: ErrorObject, data: unknown): SchemaViolation {
  const path = toFieldPath(error.instancePath, data);
  const hints = (typeof error.parentSchema === 'object' ? error.parentSchema : {}) as SchemaHints;
  const params = error.params as Record<string, unknown>;
  const got = hints.writeOnly === true ? '' : `, got ${describeValue(error.data)}`;
  const custom = typeof hints.errorMessage === 'string' ? hints.errorMessage : null;

  // Errors about a property name (propertyNames) carry it in `propertyName`.
  const propertyName = (error as ErrorObject & { propertyName?: string }).propertyName;
  if (propertyName !== undefined) {
    const hint =
      typeof hints.patternErrorMessage === 'string'
        ? hints.patternErrorMessage
        : (error.message ?? 'is not allowed');
    return {
      path: [...path, propertyName],
      at: 'key',
      message: atFieldPath(path, `invalid key ${JSON.stringify(propertyName)}: ${hint}`),
    };
  }

  switch (error.keyword) {
    case 'required': {
      const missing = String(params['missingProperty']);
      return {
        path,
        at: 'key',
        message: atFieldPath(path, `missing required field ${JSON.stringify(missing)}`),
      };
    }
    case 'additionalProperties': {
      const unknown = String(params['additionalProperty']);
      const known = Object.keys(hints.properties ?? {});
      return {
        path: [...path, unknown],
        at: 'key',
        message: atFieldPath(path, `unknown field ${JSON.stringify(unknown)}${didYouMean(unknown, known)}`),
      };
    }
    case 'oneOf':
    case 'anyOf':
      return { path, at: 'key', message: atFieldPath(path, custom ?? describeAlternatives(hints, error)) };
    case 'type': {
      const expected = String(params['type']).split(',').join(' or ');
      return { path, at: 'value', message: atFieldPath(path, `${custom ?? `must be ${expected}`}${got}`) };
    }
    case 'enum': {
      const allowed = (params['allowedValues'] as unknown[]).map((value) => JSON.stringify(value)).join(', ');
      return {
        path,
        at: 'value',
        message: atFieldPath(path, `${custom ?? `must be one of ${allowed}`}${got}`),
      };
    }
    case 'const':
      return {
        path,
        at: 'value',
        message: atFieldPath(path, `${custom ?? `must be ${JSON.stringify(params['allowedValue'])}`}${got}`),
      };
    case 'pattern': {
      const hint = typeof hints.patternErrorMessage === 'string' ? hints.patternErrorMessage : custom;
      return {
        path,
        at: 'value',
        message: atFieldPath(path, `${hint ?? `must match ${String(params['pattern'])}`}${got}`),
      };
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const bound = `must be ${String(params['comparison'])} ${String(params['limit'])}`;
      return { path, at: 'value', message: atFieldPath(path, `${custom ?? bound}${got}`) };
    }
    case 'minLength':
    case 'minItems': {
      const limit = Number(params['limit']);
      const unit = error.keyword === 'minLength' ? 'characters' : 'items';
      const text = limit === 1 ? 'must not be empty' : `must have at least ${limit} ${unit}`;
      return { path, at: 'value', message: atFieldPath(path, custom ?? text) };
    }
    case 'maxLength':
    case 'maxItems': {
      const unit = error.keyword === 'maxLength' ? 'characters' : 'items';
      return {
        path,
        at: 'value',
        message: atFieldPath(path, custom ?? `must have at most ${String(params['limit'])} ${unit}`),
      };
    }
    case 'uniqueItems':
      return {
        path,
        at: 'value',
        message: atFieldPath(
          path,
          `must not repeat a value (items ${String(params['j'])} and ${String(params['i'])} are equal)`,
        ),
      };
    case 'not':
    case 'false schema':
      return { path, at: 'value', message: atFieldPath(path, custom ?? 'is not allowed here') };
    default:
      return { path, at: 'value', message: atFieldPath(path, custom ?? error.message ?? 'is invalid') };
  }
}

/** For oneOf [{required: [a]}, {required: [b]}, ...]: say which of a, b, ... were given. */
function describeAlternatives(hints: SchemaHints, error: ErrorObject): string {
  const names = (hints.oneOf ?? []).flatMap((branch) => {
    const required = (branch as { required?: unknown }).required;
    const [name] = Array.isArray(required) && required.length === 1 ? (required as unknown[]) : [];
    return typeof name === 'string' ? [name] : [];
  });
  if (names.length === 0 || names.length !== (hints.oneOf ?? []).length) return error.message ?? 'is invalid';
  const data = (typeof error.data === 'object' && error.data !== null ? error.data : {}) as Record<
    string,
    unknown
  >;
  const present = names.filter((name) => name in data);
  const choices = listOf(
    names.map((name) => JSON.stringify(name)),
    'or',
  );
  if (present.length === 0) return `must have one of ${choices}`;
  return `must have only one of ${choices}, got ${listOf(
    present.map((name) => JSON.stringify(name)),
    'and',
  )}`;
}

function listOf(items: string[], conjunction: 'and' | 'or'): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} ${conjunction} ${items[items.length - 1] ?? ''}`;
}

/** A value as a message shows it: strings quoted (and cut short), containers by their YAML name. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  }
  return typeof value === 'number' || typeof value === 'boolean' ? String(value) : typeof value;
}

/** ajv's JSON Pointer -> field path, with list indexes as numbers (found by walking the data). */
function toFieldPath(instancePath: string, data: unknown): FieldPath {
  if (instancePath === '') return [];
  const path: (string | number)[] = [];
  let current: unknown = data;
  for (const raw of instancePath.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(current)) {
      const index = Number(segment);
      path.push(index);
      current = current[index];
    } else {
      path.push(segment);
      current =
        typeof current === 'object' && current !== null
          ? (current as Record<string, unknown>)[segment]
          : undefined;
    }
  }
  return path;
}
