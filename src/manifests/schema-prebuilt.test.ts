import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ValidateFunction } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { broken, importBuiltModule } from '../../test/helpers/prebuilt-validators.js';
import { exportName } from '../core/prebuilt-validators.js';
import { SCHEMA_FILES, schemaValidatorFor, schemaValidatorsModule } from './schema.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

async function yamlFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile() && /\.ya?ml$/.test(entry.name))
    .map((entry) => join(entry.parentPath, entry.name));
}

/** Every berth manifest in the sample repository and the tests' fixtures. */
async function manifests(): Promise<Record<string, unknown>[]> {
  const files = [...(await yamlFiles(join(root, 'sample-repo'))), ...(await yamlFiles(join(root, 'test')))];
  const found: Record<string, unknown>[] = [];
  for (const file of files) {
    const text = await readFile(file, 'utf8');
    // The hostile fixtures (alias bombs, huge files) are the loader's to refuse, not this test's.
    if (text.length > 64 * 1024) continue;
    for (const document of parseAllDocuments(text)) {
      if (!('toJS' in document) || document.errors.length > 0) continue;
      let value: unknown;
      try {
        value = document.toJS({ maxAliasCount: 10 }) as unknown;
      } catch {
        continue;
      }
      if (
        value !== null &&
        typeof value === 'object' &&
        (value as { apiVersion?: unknown }).apiVersion === 'berth/v1'
      )
        found.push(value as Record<string, unknown>);
    }
  }
  return found;
}

describe('validators built ahead (npm run build) judge as the ones compiled at run time', () => {
  let built: Record<string, unknown>;
  before(async () => {
    built = await importBuiltModule(schemaValidatorsModule());
  });

  test('every manifest of the samples and fixtures, and thousands of broken ones: same verdicts, same errors', async () => {
    const corpus = await manifests();
    assert.ok(corpus.length >= 20, `only ${corpus.length} manifests found`);
    let compared = 0;
    let refused = 0;
    for (const file of SCHEMA_FILES) {
      const compiled = schemaValidatorFor(file);
      const prebuilt = built[exportName(file)] as ValidateFunction;
      assert.equal(typeof prebuilt, 'function', `no built validator for ${file}`);
      if (file === 'common.schema.json') continue;
      for (const manifest of corpus) {
        for (const value of [manifest, ...broken(manifest)]) {
          const verdict = compiled(structuredClone(value));
          const errors = compiled.errors;
          assert.equal(prebuilt(structuredClone(value)), verdict, `${file}: ${JSON.stringify(value)}`);
          assert.deepEqual(prebuilt.errors, errors, `${file}: ${JSON.stringify(value)}`);
          compared++;
          if (!verdict) refused++;
        }
      }
    }
    assert.ok(refused > 1000 && compared - refused > 20, `${compared} compared, ${refused} refused`);
  });
});
