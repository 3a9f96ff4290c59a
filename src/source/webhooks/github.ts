import { verify } from '@octokit/webhooks-methods';
import { classify, headerOf, type WebhookDelivery, type WebhookVerdict } from './types.js';

/**
 * GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, `X-GitHub-Event`,
 * `X-GitHub-Delivery` (a GUID per delivery). Verified with @octokit/webhooks-methods, which
 * compares in constant time.
 */
export async function verifyGithubDelivery(
  secret: string,
  delivery: WebhookDelivery,
): Promise<WebhookVerdict> {
  const signature = headerOf(delivery, 'x-hub-signature-256');
  if (!signature) return { kind: 'unauthorized', reason: 'missing X-Hub-Signature-256' };
  const text = delivery.body.toString('utf8');
  // verify() takes a string; a body that is not valid UTF-8 would not survive the round trip,
  // so the bytes signed would differ from the bytes checked: refuse rather than guess.
  if (delivery.body.length === 0 || !Buffer.from(text, 'utf8').equals(delivery.body)) {
    return { kind: 'unauthorized', reason: 'signature does not match the body' };
  }
  if (!(await verify(secret, text, signature))) {
    return { kind: 'unauthorized', reason: 'signature does not match the body' };
  }
  const deliveryId = headerOf(delivery, 'x-github-delivery');
  if (!deliveryId) return { kind: 'invalid', reason: 'missing X-GitHub-Delivery' };
  const event = headerOf(delivery, 'x-github-event') ?? '';
  return classify(deliveryId, event, event === 'push', delivery);
}
