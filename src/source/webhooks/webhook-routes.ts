import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Logger } from '../../core/log.js';
import { verifyGiteaDelivery } from './gitea.js';
import { verifyGithubDelivery } from './github.js';
import { verifyGitlabDelivery } from './gitlab.js';
import { SeenDeliveries } from './seen-deliveries.js';
import {
  WEBHOOK_PROVIDERS,
  type WebhookDelivery,
  type WebhookProvider,
  type WebhookVerdict,
} from './types.js';

/** How a delivery ended, as counted in `berth_webhook_deliveries_total{provider,result}`. */
export type WebhookResult =
  'triggered' | 'ignored' | 'unauthorized' | 'replayed' | 'invalid' | 'disabled' | 'too-large';

export interface WebhookRoutesOptions {
  /** The shared secret; null turns the endpoints into a 503 that says how to enable them. */
  secret: string | null;
  /** Only a push to `refs/heads/<branch>` starts a reconcile. */
  branch: string;
  /** Enqueues a reconcile. Gets no payload: the reconcile reads git, never the request. */
  onPush: (provider: WebhookProvider) => void;
  log: Logger;
  metrics?: { recordWebhookDelivery(provider: WebhookProvider, result: WebhookResult): void };
  /** Largest accepted body; GitHub caps its own payloads at 25 MB, but a push's ref is near the top. */
  bodyLimit?: number;
  /** How many delivery ids are remembered for replay detection. */
  rememberDeliveries?: number;
}

export const DEFAULT_WEBHOOK_BODY_LIMIT = 1024 * 1024;

const verifiers: Record<WebhookProvider, (secret: string, d: WebhookDelivery) => Promise<WebhookVerdict>> = {
  github: verifyGithubDelivery,
  gitlab: verifyGitlabDelivery,
  gitea: verifyGiteaDelivery,
};

/**
 * `POST /webhooks/github`, `/webhooks/gitlab`, `/webhooks/gitea`. Register with
 * `app.register(webhookRoutes, options)`: the plugin is encapsulated, so its raw-body parser
 * applies to these routes only. Signatures are checked over the exact bytes received, before
 * anything in the body is looked at.
 */
export async function webhookRoutes(app: FastifyInstance, options: WebhookRoutesOptions): Promise<void> {
  const bodyLimit = options.bodyLimit ?? DEFAULT_WEBHOOK_BODY_LIMIT;
  const seen = new SeenDeliveries(options.rememberDeliveries);
  const trackedRef = `refs/heads/${options.branch}`;

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_request, body, done) => {
    done(null, body);
  });

  for (const provider of WEBHOOK_PROVIDERS) {
    const answer = (reply: FastifyReply, status: number, result: WebhookResult, message: string) => {
      options.metrics?.recordWebhookDelivery(provider, result);
      const level = status >= 400 ? 'warn' : 'info';
      options.log[level]({ provider, result, status }, `webhook: ${message}`);
      return reply.code(status).send({ result, message });
    };
    app.post(`/webhooks/${provider}`, { bodyLimit }, async (request, reply) => {
      if (options.secret === null) {
        return answer(
          reply,
          503,
          'disabled',
          'webhooks are not enabled: start berth run with BERTH_WEBHOOK_SECRET or --webhook-secret-file',
        );
      }
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const verdict = await verifiers[provider](options.secret, { headers: request.headers, body });
      switch (verdict.kind) {
        case 'unauthorized':
          return answer(reply, 401, 'unauthorized', verdict.reason);
        case 'invalid':
          return answer(reply, 400, 'invalid', verdict.reason);
      }
      if (!seen.remember(verdict.deliveryId)) {
        return answer(reply, 401, 'replayed', `delivery ${verdict.deliveryId} was already received`);
      }
      if (verdict.kind === 'ignored') {
        return answer(reply, 200, 'ignored', `"${verdict.event}" event ignored: only pushes deploy`);
      }
      if (verdict.ref !== trackedRef) {
        return answer(reply, 200, 'ignored', `push to ${verdict.ref} ignored: following ${trackedRef}`);
      }
      options.onPush(provider);
      return answer(reply, 202, 'triggered', `push to ${trackedRef}: reconcile started`);
    });
  }

  // The body limit is enforced by fastify before a handler runs; count those refusals too.
  app.addHook('onResponse', async (request, reply) => {
    if (reply.statusCode !== 413) return;
    const provider = WEBHOOK_PROVIDERS.find((p) => request.url === `/webhooks/${p}`);
    if (provider) options.metrics?.recordWebhookDelivery(provider, 'too-large');
  });
}
