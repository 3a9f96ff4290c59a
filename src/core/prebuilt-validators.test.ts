import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  contentStamp,
  createAjv,
  loadPrebuiltValidators,
  prebuiltValidatorsModule,
} from './prebuilt-validators.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const SCHEMA = { type: 'object', required: ['n'], properties: { n: { type: 'integer', minimum: 1 } } };

describe('prebuilt validators', () => {
  const scratch: string[] = [];
  after(async () => {
    for (const dir of scratch) await rm(dir, { recursive: true, force: true });
  });

  /** A built module of one schema with `stamp`, where ajv's runtime helpers resolve. */
  async function builtModule(stamp: string): Promise<URL> {
    const cache = join(root, 'node_modules', '.cache');
    await mkdir(cache, { recursive: true });
    const dir = await mkdtemp(join(cache, 'berth-prebuilt-'));
    scratch.push(dir);
    const ajv = createAjv({ allErrors: true }, true);
    ajv.addSchema(SCHEMA, 'n.json');
    await writeFile(join(dir, 'package.json'), '{"type":"module"}');
    await writeFile(join(dir, 'validators.js'), prebuiltValidatorsModule(ajv, ['n.json'], stamp));
    return pathToFileURL(join(dir, 'validators.js'));
  }

  test('a module built for this stamp is used; one built for another, or none, is not', async () => {
    const stamp = contentStamp([SCHEMA]);
    const current = await loadPrebuiltValidators(await builtModule(stamp), ['n.json'], stamp);
    const validate = current?.get('n.json');
    assert.ok(validate);
    assert.equal(validate({ n: 2 }), true);
    assert.equal(validate({ n: 0 }), false);
    assert.equal(validate.errors?.[0]?.instancePath, '/n');

    const stale = await builtModule(contentStamp([{ ...SCHEMA, required: [] }]));
    assert.equal(await loadPrebuiltValidators(stale, ['n.json'], stamp), null);
    assert.equal(await loadPrebuiltValidators(new URL('missing.js', stale), ['n.json'], stamp), null);
    // A module that lacks one of the validators asked for is not used either.
    assert.equal(
      await loadPrebuiltValidators(await builtModule(stamp), ['n.json', 'other.json'], stamp),
      null,
    );
  });

  test('the stamp follows the content', () => {
    assert.equal(contentStamp([SCHEMA]), contentStamp([structuredClone(SCHEMA)]));
    assert.notEqual(contentStamp([SCHEMA]), contentStamp([{ ...SCHEMA, required: [] }]));
  });
});
