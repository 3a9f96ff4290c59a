import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readWebhookSecret } from './webhook-secret.js';

test('the webhook secret comes from the file (trailing newline dropped), else the environment', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-secret-'));
  try {
    await writeFile(join(dir, 'secret'), 's3cret\n');
    assert.equal(await readWebhookSecret(join(dir, 'secret'), { BERTH_WEBHOOK_SECRET: 'env' }), 's3cret');
    assert.equal(await readWebhookSecret(undefined, { BERTH_WEBHOOK_SECRET: 'env' }), 'env');
    assert.equal(await readWebhookSecret(undefined, {}), null);
    await writeFile(join(dir, 'empty'), '\n');
    await assert.rejects(readWebhookSecret(join(dir, 'empty'), {}), /is empty/);
    await assert.rejects(readWebhookSecret(undefined, { BERTH_WEBHOOK_SECRET: '' }), /is empty/);
    await assert.rejects(readWebhookSecret(join(dir, 'missing'), {}), /cannot read --webhook-secret-file/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
