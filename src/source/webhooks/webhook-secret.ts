import { readFile } from 'node:fs/promises';
import { BerthError } from '../../core/errors.js';

/**
 * The webhooks' shared secret: the file given with --webhook-secret-file (trailing newline
 * dropped, as `echo secret > file` writes one), else BERTH_WEBHOOK_SECRET, else null (webhooks
 * disabled). An empty secret is refused: it would make every signature trivially forgeable.
 */
export async function readWebhookSecret(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | null> {
  let secret: string | undefined;
  let from: string;
  if (file !== undefined) {
    from = `--webhook-secret-file ${file}`;
    try {
      secret = (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
    } catch (error) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `cannot read ${from}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  } else {
    from = 'BERTH_WEBHOOK_SECRET';
    secret = env['BERTH_WEBHOOK_SECRET'];
    if (secret === undefined) return null;
  }
  if (secret.trim() === '') throw new BerthError('ERR_BAD_REQUEST', `${from} is empty`);
  return secret;
}
