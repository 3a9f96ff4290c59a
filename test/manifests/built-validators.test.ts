/**
 * berth as built (`npm run build`, which `npm test` runs first): the validators of the manifest
 * schemas and of the agent calls come compiled with it, and neither a manifest load nor an agent
 * call loads ajv's compiler.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { builtIsCurrent } from '../helpers/berth-cli.js';

const exec = promisify(execFile);
const dist = new URL('../../dist/', import.meta.url);

test('the build holds the schemas validators, and a manifest load uses them without ajv', async () => {
  assert.ok(builtIsCurrent(), 'dist/ is older than src/ or schemas/: run `npm run build`');
  assert.ok(existsSync(new URL('manifests/schema-validators.js', dist)));
  const probe = `
    const { loadManifests } = await import(${JSON.stringify(new URL('manifests/load.js', dist).href)});
    const content = Buffer.from('apiVersion: berth/v1\\nkind: Service\\nmetadata: { name: web }\\nspec:\\n  image: web:1\\n  replicas: many\\n');
    const result = loadManifests([{ path: 'web.yaml', content }], {});
    const { createRequire } = await import('node:module');
    const loaded = Object.keys(createRequire(import.meta.url).cache);
    console.log(JSON.stringify({ result, ajvCompiler: loaded.some((m) => /[\\\\/]ajv[\\\\/]dist[\\\\/](core|ajv)\\.js$/.test(m)) }));
  `;
  const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', probe], {
    cwd: fileURLToPath(dist),
  });
  const { result, ajvCompiler } = JSON.parse(stdout) as {
    result: { ok: boolean; problems?: { file: string; line: number; message: string }[] };
    ajvCompiler: boolean;
  };
  assert.equal(ajvCompiler, false);
  assert.equal(result.ok, false);
  assert.equal(result.problems?.[0]?.file, 'web.yaml');
  assert.equal(result.problems?.[0]?.line, 6);
  assert.match(result.problems?.[0]?.message ?? '', /replicas/);
});

test('the build holds the agent calls validators, and an agent checks calls without ajv', async () => {
  assert.ok(builtIsCurrent(), 'dist/ is older than src/ or schemas/: run `npm run build`');
  assert.ok(existsSync(new URL('api/agent-call-validators.js', dist)));
  const probe = `
    const { parseAgentCall } = await import(${JSON.stringify(new URL('api/agent-calls.js', dist).href)});
    let message = null;
    try { parseAgentCall('removeReplica', ['../etc']); } catch (error) { message = error.message; }
    const accepted = parseAgentCall('awaitReplica', ['web.1', { timeoutMs: 5, extra: 1 }]).params;
    const { createRequire } = await import('node:module');
    const loaded = Object.keys(createRequire(import.meta.url).cache);
    console.log(JSON.stringify({ message, accepted, ajvCompiler: loaded.some((m) => /[\\\\/]ajv[\\\\/]dist[\\\\/](core|ajv)\\.js$/.test(m)) }));
  `;
  const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', probe], {
    cwd: fileURLToPath(dist),
  });
  const { message, accepted, ajvCompiler } = JSON.parse(stdout) as {
    message: string | null;
    accepted: unknown;
    ajvCompiler: boolean;
  };
  assert.equal(ajvCompiler, false);
  assert.match(message ?? '', /name: must match/);
  assert.deepEqual(accepted, ['web.1', { timeoutMs: 5 }]);
});
