/**
 * berth as built (`npm run build`, which `npm test` runs first): the manifest schemas' validators
 * come compiled with it, and loading manifests does not load ajv's compiler.
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
