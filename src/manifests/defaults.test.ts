import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_ROLLBACK_POLICY, DEFAULT_UPDATE_POLICY, defaultSecretOwner } from './defaults.js';
import { normaliseService } from './normalise.js';
import { readSchema, SCHEMA_FILES, schemaValidatorFor, type SchemaFile } from './schema.js';
import type { ServiceSpec, WrittenService } from './types.js';

type Schema = Record<string, unknown> & {
  properties?: Record<string, Schema>;
  $ref?: string;
  items?: Schema;
};

const schemas = new Map<string, Schema>(SCHEMA_FILES.map((file) => [file, readSchema(file) as Schema]));

/** Follows a `$ref` (within our schema files) to the schema it names, keeping the referring file. */
function resolve(schema: Schema, file: string): { schema: Schema; file: string } {
  if (schema.$ref === undefined) return { schema, file };
  const [target = '', pointer = ''] = schema.$ref.split('#');
  const targetFile = target === '' ? file : target;
  let resolved = schemas.get(targetFile) as Schema;
  for (const segment of pointer.split('/').filter(Boolean)) resolved = resolved[segment] as Schema;
  return resolve(resolved, targetFile);
}

/** Writes every schema default into `value` wherever it is absent, the way an editor would. */
function fillSchemaDefaults(value: unknown, schema: Schema, file: string): unknown {
  const { schema: resolved, file: resolvedFile } = resolve(schema, file);
  if (Array.isArray(value) && resolved.items) {
    return value.map((item) => fillSchemaDefaults(item, resolved.items!, resolvedFile));
  }
  if (typeof value !== 'object' || value === null || !resolved.properties) return value;
  const filled: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [name, property] of Object.entries(resolved.properties)) {
    const defaultValue = property['default'] ?? resolve(property, resolvedFile).schema['default'];
    if (!(name in filled) && defaultValue !== undefined) filled[name] = structuredClone(defaultValue);
    if (name in filled) filled[name] = fillSchemaDefaults(filled[name], property, resolvedFile);
  }
  return filled;
}

const minimal: WrittenService = {
  apiVersion: 'berth/v1',
  kind: 'Service',
  metadata: { name: 'web' },
  spec: {
    image: 'busybox:1.36',
    ports: [{ target: 8080 }],
    configs: [{ source: 'site', key: 'index.html', target: '/www/index.html' }],
    secrets: [{ source: 'db', key: 'password' }],
    envFrom: [{ config: 'settings' }],
    healthcheck: { http: { port: 8080 } },
  },
};

void describe('defaults', () => {
  void test('the schemas and defaults.ts agree: writing out every schema default changes nothing', () => {
    const filled = fillSchemaDefaults(minimal, schemas.get('service.schema.json')!, 'service.schema.json');
    assert.notDeepEqual(filled, minimal, 'the schema should carry defaults to fill in');
    const validate = schemaValidatorFor('service.schema.json');
    assert.ok(validate(filled), JSON.stringify(validate.errors));
    assert.deepEqual(normaliseService(filled as WrittenService), normaliseService(minimal));
  });

  void test('secret files belong to a numeric spec.user by default, so a 0400 file stays readable to it', () => {
    assert.deepEqual(defaultSecretOwner(undefined), { uid: 0, gid: 0 });
    assert.deepEqual(defaultSecretOwner('1000'), { uid: 1000, gid: 0 });
    assert.deepEqual(defaultSecretOwner('1000:1001'), { uid: 1000, gid: 1001 });
    assert.deepEqual(defaultSecretOwner('nobody'), { uid: 0, gid: 0 });
    const spec = normaliseService({ ...minimal, spec: { ...minimal.spec, user: '1000:1001' } });
    assert.deepEqual(
      spec.secrets.map((s) => [s.uid, s.gid]),
      [[1000, 1001]],
    );
    const explicit = normaliseService({
      ...minimal,
      spec: { ...minimal.spec, user: '1000', secrets: [{ source: 'db', key: 'password', uid: 7, gid: 8 }] },
    });
    assert.deepEqual(
      explicit.secrets.map((s) => [s.uid, s.gid]),
      [[7, 8]],
    );
  });

  void test('a minimal service gets the documented defaults', () => {
    const expected: ServiceSpec = {
      kind: 'Service',
      name: 'web',
      namespace: 'default',
      labels: {},
      image: 'busybox:1.36',
      command: null,
      args: null,
      env: {},
      envFrom: [{ config: 'settings', prefix: '' }],
      mode: 'replicated',
      replicas: 1,
      ports: [{ target: 8080, published: null, protocol: 'tcp', appProtocol: 'tcp' }],
      configs: [{ source: 'site', key: 'index.html', target: '/www/index.html', mode: 0o444 }],
      secrets: [
        { source: 'db', key: 'password', target: '/run/secrets/db/password', mode: 0o400, uid: 0, gid: 0 },
      ],
      healthcheck: {
        probe: { type: 'http', port: 8080, path: '/', expectStatus: [] },
        intervalMs: 10_000,
        timeoutMs: 1_000,
        retries: 3,
        startPeriodMs: 0,
      },
      resources: { limits: { nanoCpus: 0, memoryBytes: 0 }, reservations: { nanoCpus: 0, memoryBytes: 0 } },
      placement: { constraints: [], spread: null, maxPerNode: 0 },
      update: {
        parallelism: 1,
        delayMs: 0,
        order: 'start-first',
        monitorMs: 5_000,
        failureAction: 'rollback',
        maxFailureRatio: 0,
        progressDeadlineMs: 600_000,
      },
      rollback: {
        parallelism: 1,
        delayMs: 0,
        order: 'start-first',
        monitorMs: 5_000,
        failureAction: 'pause',
        maxFailureRatio: 0,
        progressDeadlineMs: 600_000,
      },
      restart: { condition: 'any', maxAttempts: 0 },
      stopGracePeriodMs: 10_000,
      user: null,
      readOnlyRootFilesystem: false,
      capabilities: { drop: [], add: [] },
      workingDir: null,
      init: false,
      dependsOn: [],
      volumes: [],
      tmpfs: [],
      volumeReclaim: 'retain',
    };
    assert.deepEqual(normaliseService(minimal), expected);
  });

  void test('the rollback policy differs from the update policy only in failureAction', () => {
    assert.deepEqual(
      { ...DEFAULT_ROLLBACK_POLICY, failureAction: DEFAULT_UPDATE_POLICY.failureAction },
      DEFAULT_UPDATE_POLICY,
    );
    assert.equal(DEFAULT_ROLLBACK_POLICY.failureAction, 'pause');
  });
});

void describe('schemas document themselves', () => {
  // Optional fields whose absence means "not set" (the image's own, none, the derived default).
  const withoutDefault = new Set([
    'command',
    'args',
    'published',
    'host',
    'http',
    'tcp',
    'exec',
    'healthcheck',
    'user',
    'workingDir',
    'spread',
    'target',
    'uid',
    'gid',
    'activeDeadline',
    'startingDeadline',
    // start-first, or stop-first for a service with volumes.
    'order',
  ]);

  for (const file of SCHEMA_FILES) {
    void test(`${file}: every field has a description, every optional field a default`, () => {
      const missing: string[] = [];
      const visit = (schema: Schema, where: string, schemaFile: SchemaFile): void => {
        const required = new Set((schema['required'] as string[] | undefined) ?? []);
        for (const [name, property] of Object.entries(schema.properties ?? {})) {
          const { schema: resolved } = resolve(property, schemaFile);
          const at = `${where}.${name}`;
          if (property['description'] === undefined && resolved['description'] === undefined)
            missing.push(`${at}: description`);
          const hasDefault = property['default'] !== undefined || resolved['default'] !== undefined;
          if (
            !required.has(name) &&
            !hasDefault &&
            !withoutDefault.has(name) &&
            name !== 'kind' &&
            name !== 'apiVersion'
          ) {
            missing.push(`${at}: default`);
          }
          visit(property, at, schemaFile);
          if (property.items) visit(property.items, `${at}[]`, schemaFile);
        }
      };
      const root = schemas.get(file)!;
      visit(root, '', file);
      for (const [name, definition] of Object.entries(
        (root['definitions'] as Record<string, Schema> | undefined) ?? {},
      )) {
        visit(definition, `#${name}`, file);
      }
      assert.deepEqual(missing, []);
    });
  }
});
