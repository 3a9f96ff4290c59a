/**
 * Step 2 of loading: JSON Schema validation with ajv against schemas/*.schema.json, the single source
 * of truth for what a manifest may contain. Every error is turned into a message a person can act on
 * (schema-errors.ts) and a field path the loader maps back to `file:line:col`.
 */
import { readFileSync } from 'node:fs';
import type { Ajv, Options, ValidateFunction } from 'ajv';
import {
  contentStamp,
  createAjv,
  loadPrebuiltValidators,
  prebuiltValidatorsModule,
} from '../core/prebuilt-validators.js';
import { describeSchemaErrors, type SchemaViolation } from './schema-errors.js';
import type { ManifestKind } from './types.js';

export type { SchemaViolation } from './schema-errors.js';

/** The schema files, in the order they must be registered (the shared definitions first). */
export const SCHEMA_FILES = [
  'common.schema.json',
  'service.schema.json',
  'job.schema.json',
  'cronjob.schema.json',
  'config.schema.json',
  'secret.schema.json',
  'namespace.schema.json',
  'notifier.schema.json',
  'berth.schema.json',
] as const;
export type SchemaFile = (typeof SCHEMA_FILES)[number];

const SCHEMA_FOR_KIND: Record<ManifestKind, SchemaFile> = {
  Service: 'service.schema.json',
  Job: 'job.schema.json',
  CronJob: 'cronjob.schema.json',
  Config: 'config.schema.json',
  Secret: 'secret.schema.json',
  Namespace: 'namespace.schema.json',
  Notifier: 'notifier.schema.json',
};

/** schemas/ sits next to src/ and dist/ alike, so the same relative URL works from both. */
const SCHEMA_DIRECTORY = new URL('../../schemas/', import.meta.url);

const AJV_OPTIONS: Options = {
  allErrors: true,
  strict: true,
  // "exactly one of" is written oneOf [{required: [http]}, {required: [tcp]}, ...], the standard
  // idiom; strictRequired would want each branch to repeat the properties it names.
  strictRequired: false,
  allowUnionTypes: true,
  // Gives each error its parentSchema, where the human messages below live.
  verbose: true,
};

/** Every schema registered in an ajv instance with berth's options (`forBuild`: see createAjv). */
function schemaAjv(schemas: readonly Record<string, unknown>[], forBuild: boolean): Ajv {
  const instance = createAjv(AJV_OPTIONS, forBuild);
  // VS Code's JSON/YAML language servers show these two in the editor; we show them on the CLI.
  instance.addKeyword({ keyword: 'errorMessage', schemaType: 'string' });
  instance.addKeyword({ keyword: 'patternErrorMessage', schemaType: 'string' });
  SCHEMA_FILES.forEach((file, i) => instance.addSchema(schemas[i]!, file));
  return instance;
}

/** The built validators (src/core/prebuilt-validators.ts), beside this module once built. */
const PREBUILT_URL = new URL('./schema-validators.js', import.meta.url);

/**
 * The ES module of every schema's validator, written by the build to PREBUILT_URL
 * (scripts/build-validators.mjs).
 */
export function schemaValidatorsModule(): string {
  const schemas = SCHEMA_FILES.map(readSchema);
  const stamp = contentStamp([AJV_OPTIONS, schemas]);
  return prebuiltValidatorsModule(schemaAjv(schemas, true), SCHEMA_FILES, stamp);
}

const compiled = await (async () => {
  const schemas = SCHEMA_FILES.map(readSchema);
  const stamp = contentStamp([AJV_OPTIONS, schemas]);
  return { schemas, prebuilt: await loadPrebuiltValidators(PREBUILT_URL, SCHEMA_FILES, stamp) };
})();

let ajv: Ajv | undefined;

/** The validators compiled here, when there are no built ones: each schema on first use. */
function schemaValidator(): Ajv {
  ajv ??= schemaAjv(compiled.schemas, false);
  return ajv;
}

/** A schema file's content, as shipped in schemas/. */
export function readSchema(file: SchemaFile): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(file, SCHEMA_DIRECTORY), 'utf8')) as Record<string, unknown>;
}

/** The compiled validator of one schema file (berth.schema.json validates any kind). */
export function schemaValidatorFor(file: SchemaFile): ValidateFunction {
  const validate = compiled.prebuilt?.get(file) ?? schemaValidator().getSchema(file);
  if (!validate) throw new Error(`schema ${file} is not registered`);
  return validate;
}

/** Every way `value` breaks the schema of `kind`; empty when it conforms. */
export function validateManifestSchema(kind: ManifestKind, value: unknown): SchemaViolation[] {
  const validate = schemaValidatorFor(SCHEMA_FOR_KIND[kind]);
  if (validate(value)) return [];
  return describeSchemaErrors(validate.errors ?? [], value);
}
