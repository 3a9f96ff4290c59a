import { secretsEqual } from './hmac.js';
import { classify, headerOf, type WebhookDelivery, type WebhookVerdict } from './types.js';

/**
 * GitLab: the secret token itself in `X-Gitlab-Token` (no body signature), `X-Gitlab-Event`
 * (`Push Hook` for pushes), `X-Gitlab-Event-UUID` (one per event; GitLab 15.x and later).
 */
export async function verifyGitlabDelivery(
  secret: string,
  delivery: WebhookDelivery,
): Promise<WebhookVerdict> {
  const token = headerOf(delivery, 'x-gitlab-token');
  if (!token) return { kind: 'unauthorized', reason: 'missing X-Gitlab-Token' };
  if (!secretsEqual(token, secret)) return { kind: 'unauthorized', reason: 'X-Gitlab-Token is wrong' };
  const deliveryId = headerOf(delivery, 'x-gitlab-event-uuid');
  if (!deliveryId) return { kind: 'invalid', reason: 'missing X-Gitlab-Event-UUID' };
  const event = headerOf(delivery, 'x-gitlab-event') ?? '';
  return classify(deliveryId, event, event === 'Push Hook', delivery);
}
