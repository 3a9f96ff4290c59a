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

/** What the schema says about the field in error, and how its value may be quoted back. */
interface ErrorContext {
  hints: SchemaHints;
  params: Record<string, unknown>;
  /** `, got <value>`, or empty for `writeOnly` (secret) fields. */
  got: string;
  /** The schema's own wording (`errorMessage`), when it has one. */
  custom: string | null;
}

function describeSchemaError(error: ErrorObject, data: unknown): SchemaViolation {
  const path = toFieldPath(error.instancePath, data);
  const hints = (typeof error.parentSchema === 'object' ? error.parentSchema : {}) as SchemaHints;
  const context: ErrorContext = {
    hints,
    params: error.params as Record<string, unknown>,
    got: hints.writeOnly === true ? '' : `, got ${describeValue(error.data)}`,
    custom: typeof hints.errorMessage === 'string' ? hints.errorMessage : null,
  };
  return (
    describeKeyError(error, path, context) ?? {
      path,
      at: 'value',
      message: atFieldPath(path, describeValueError(error, context)),
    }
  );
}

/** Errors about a key (an invalid, unknown or missing field, or a choice of fields); null for the rest. */
function describeKeyError(
  error: ErrorObject,
  path: FieldPath,
  context: ErrorContext,
): SchemaViolation | null {
  const { hints, params, custom } = context;
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
    default:
      return null;
  }
}

/** The message (without the field path) for an error about a field's value. */
function describeValueError(error: ErrorObject, context: ErrorContext): string {
  const { hints, params, got, custom } = context;
  switch (error.keyword) {
    case 'type':
      return `${custom ?? `must be ${String(params['type']).split(',').join(' or ')}`}${got}`;
    case 'enum': {
      const allowed = (params['allowedValues'] as unknown[]).map((value) => JSON.stringify(value)).join(', ');
      return `${custom ?? `must be one of ${allowed}`}${got}`;
    }
    case 'const':
      return `${custom ?? `must be ${JSON.stringify(params['allowedValue'])}`}${got}`;
    case 'pattern': {
      const hint = typeof hints.patternErrorMessage === 'string' ? hints.patternErrorMessage : custom;
      return `${hint ?? `must match ${String(params['pattern'])}`}${got}`;
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `${custom ?? `must be ${String(params['comparison'])} ${String(params['limit'])}`}${got}`;
    case 'minLength':
    case 'minItems': {
      const limit = Number(params['limit']);
      const unit = error.keyword === 'minLength' ? 'characters' : 'items';
      return custom ?? (limit === 1 ? 'must not be empty' : `must have at least ${limit} ${unit}`);
    }
    case 'maxLength':
    case 'maxItems': {
      const unit = error.keyword === 'maxLength' ? 'characters' : 'items';
      return custom ?? `must have at most ${String(params['limit'])} ${unit}`;
    }
    case 'uniqueItems':
      return `must not repeat a value (items ${String(params['j'])} and ${String(params['i'])} are equal)`;
    case 'not':
    case 'false schema':
      return custom ?? 'is not allowed here';
    default:
      return custom ?? error.message ?? 'is invalid';
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
